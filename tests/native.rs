//! The client natively on tokio (cargo feature `native`), end to end
//! against the test server started in-process (and Meteor 3.0.4's own
//! server, the fixture, when it is there): the lifecycle (heartbeats, a
//! silent server, clean closes, version negotiation, retries and their
//! reasons, a mute server let go), calls across drops and in order after
//! the reconnect hooks, subscriptions and queries, accounts, rooms, `wss://`,
//! upgrade headers, and the `Send` [`SharedConnection`] from a
//! multi-threaded runtime.
#![cfg(not(target_arch = "wasm32"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "server/tests/common/mod.rs"]
mod server;

use ddp_live::rooms::{Client, JoinOptions, RoomNotice};
use ddp_live::{connect, Connection, ConnectionState, Options, RetryPolicy, SharedConnection};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::task::LocalSet;

/// Fast retries, as the browser tests use.
fn fast() -> Options {
    Options {
        retry: RetryPolicy { min_count: 1, min_timeout_ms: 20.0, base_timeout_ms: 50.0, exponent: 1.5, max_timeout_ms: 200.0, fuzz: 0.5 },
        ..Options::default()
    }
}

fn url(addr: SocketAddr, scenario: &str) -> String {
    format!("ws://{addr}/t/{scenario}/websocket")
}

/// Waits until `pred` holds, or fails naming `what` after `ms`.
async fn until(ms: u64, what: &str, pred: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while !pred() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {ms} ms waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The server's count of open sockets in `scenario`, once it is `want`
/// (or after two seconds of waiting for it).
async fn open_sockets(addr: SocketAddr, scenario: &str, want: u64) -> Value {
    let mut n = Value::Null;
    for _ in 0..200 {
        n = server::control(addr, &format!("/control/{scenario}/stats")).await["connections"].clone();
        if n == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    n
}

async fn connected(conn: &Connection) {
    until(5_000, "connected", || conn.connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_subscriptions_and_a_drop_with_resumption() {
    let (_server, addr) = server::start(Default::default()).await;
    LocalSet::new()
        .run_until(async move {
            let conn = connect(&url(addr, "n-life"), fast()).unwrap();
            assert_eq!(conn.status().status, ConnectionState::Connecting);
            connected(&conn).await;
            assert_eq!(conn.call::<i64>("add", (2, 3)).await, Ok(5));
            let items = conn.collection("items");
            conn.subscribe("items", (5, 0)).wait_ready().await.unwrap();
            assert_eq!(items.len(), 5);
            assert_eq!(items.find_one("item-3").unwrap()["i"], 3);
            let open = items.query(json!({"i": {"$gte": 3}}), json!({"sort": {"i": -1}})).unwrap();
            assert_eq!(open.fetch().iter().map(|d| d["i"].clone()).collect::<Vec<_>>(), vec![json!(4), json!(3)]);
            let by_regex = items.query(json!({"_id": {"$regex": "^ITEM-[34]$", "$options": "i"}}), json!({})).unwrap();
            assert_eq!(by_regex.count(), 2, "$regex natively (the regex crate)");
            // Offline: the server refuses new sockets; a call waits in the outbox.
            let session = conn.id().unwrap();
            server::control(addr, "/control/n-life/refuse?on=true").await;
            server::control(addr, "/control/n-life/drop").await;
            until(5_000, "the drop", || !conn.connected()).await;
            let call = conn.call::<i64>("inc", ("x",));
            assert_eq!(conn.outbox().queued, 1);
            server::control(addr, "/control/n-life/refuse?on=false").await;
            assert_eq!(call.await, Ok(1));
            assert_eq!(conn.id(), Some(session), "the session was resumed");
            assert!(conn.resumed());
            assert_eq!(server::control(addr, "/control/n-life/executions").await["counters"]["x"], 1);
            assert_eq!(items.len(), 5, "documents kept across the resumption");
            conn.close();
        })
        .await;
    assert_eq!(open_sockets(addr, "n-life", 0).await, 0, "close() closed the socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_log_in_and_calls_run_as_the_user() {
    let (_server, addr) = server::start(Default::default()).await;
    let created = server::control(addr, "/control/n-acc/accounts?op=create&username=ada&email=ada@example.com&password=pw").await;
    let id = created["id"].as_str().unwrap().to_owned();
    LocalSet::new()
        .run_until(async move {
            let conn = connect(&url(addr, "n-acc"), fast()).unwrap();
            let accounts = conn.accounts();
            assert_eq!(accounts.login_with_password("ada", "nope").await.unwrap_err().error(), json!(403));
            assert_eq!(accounts.login_with_password("ada", "pw").await, Ok(id.clone()));
            assert_eq!(accounts.user_id(), Some(id.clone()));
            assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(Some(id.clone())));
            accounts.logout().await.unwrap();
            assert_eq!(accounts.user_id(), None);
            assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(None));
            conn.close();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_share_one_socket_and_exchange_messages() {
    let (_server, addr) = server::start(Default::default()).await;
    LocalSet::new()
        .run_until(async move {
            let a = Client::new(&url(addr, "n-rooms"), fast()).unwrap();
            let b = Client::new(&url(addr, "n-rooms"), fast()).unwrap();
            let (ra, rb) = (a.connect("lobby", JoinOptions::default()), b.connect("lobby", JoinOptions::default()));
            let seen: Rc<RefCell<Vec<Value>>> = Rc::default();
            let s = seen.clone();
            let _listen = ra.on_notice(move |n| {
                if let RoomNotice::Message { data, .. } = n {
                    s.borrow_mut().push(data.clone());
                }
            });
            until(5_000, "both joins", || ra.connected() && rb.connected()).await;
            rb.send(json!({"text": "hi"}), None).await.unwrap();
            until(5_000, "the message", || !seen.borrow().is_empty()).await;
            assert_eq!(*seen.borrow(), vec![json!({"text": "hi"})]);
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_is_used_from_spawned_tasks_and_closes_when_dropped() {
    let (_server, addr) = server::start(Default::default()).await;
    let conn = SharedConnection::connect(&url(addr, "n-shared"), fast()).unwrap();
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    assert_send_sync(&conn);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.call::<i64>("inc", ("n",)).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    results.sort_unstable();
    assert_eq!(results, (1..=10).collect::<Vec<i64>>(), "each call ran once");
    assert!(conn.status().connected);
    // The whole Rust API, on the connection's thread.
    let (ready, len) = conn
        .run(|c| async move {
            let ok = c.subscribe("items", (3, 0)).wait_ready().await.is_ok();
            (ok, c.collection("items").len())
        })
        .await
        .unwrap();
    assert!(ready);
    assert_eq!(len, 3);
    assert_eq!(server::control(addr, "/control/n-shared/stats").await["connections"], 1);
    drop(conn);
    assert_eq!(open_sockets(addr, "n-shared", 0).await, 0, "dropping the last clone closed the socket");
}

#[test]
fn a_connection_without_a_server_retries_and_reports_why() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    LocalSet::new().block_on(&runtime, async {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let conn = connect(&url(addr, "none"), Options { max_retries: Some(2), ..fast() }).unwrap();
        let (seen, _listen) = events(&conn);
        until(5_000, "failed", || conn.status().status == ConnectionState::Failed).await;
        assert_eq!(conn.status().retry_count, 2);
        let errors = error_texts(&seen);
        assert_eq!(errors.len(), 3, "the first attempt and two retries: {errors:?}");
        assert!(errors.iter().all(|e| e.contains("refused")), "the app hears why: {errors:?}");
    });
}

/// Meteor 3.0.4's own ddp-server (the fixture `../shared/meteor-server`),
/// started for one test and stopped when this is dropped.
struct Meteor {
    child: std::process::Child,
    port: u16,
}

impl Drop for Meteor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the Meteor fixture on a free port, or None (printing why) when it
/// is absent.
fn meteor() -> Option<Meteor> {
    let dir = match std::env::var_os("METEOR_FIXTURE") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/meteor-server"),
    };
    if !dir.join("server.mjs").exists() || !dir.join("node_modules/sockjs").exists() {
        println!("skipped: no Meteor fixture (looked in {})", dir.display());
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = std::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node runs the Meteor fixture");
    let meteor = Meteor { child, port };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(meteor);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the Meteor fixture did not start on port {port}");
}

/// A GET on the Meteor fixture's control endpoint.
async fn meteor_control(port: u16, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    // The body may be chunked: take the JSON object inside.
    let (start, end) = (json.find('{').unwrap(), json.rfind('}').unwrap());
    serde_json::from_str(&json[start..=end]).unwrap()
}

#[test]
fn against_meteor_calls_live_data_and_a_new_session_after_a_drop() {
    let Some(meteor) = meteor() else { return };
    let port = meteor.port;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    LocalSet::new().block_on(&runtime, async move {
        let conn = connect(&format!("ws://127.0.0.1:{port}/websocket"), fast()).unwrap();
        connected(&conn).await;
        assert_eq!(conn.call::<i64>("add", (2, 3)).await, Ok(5));
        let e = conn.call::<Value>("fail", ("not-allowed", "nope")).await.unwrap_err();
        assert_eq!((e.error(), e.reason()), (json!("not-allowed"), "nope".to_owned()));
        let items = conn.collection("items");
        conn.subscribe("items", (3,)).wait_ready().await.unwrap();
        assert_eq!(items.len(), 3);
        let docs = conn.collection("docs");
        conn.subscribe("docs", ()).wait_ready().await.unwrap();
        let id: String = conn.call("insertDoc", (json!({"text": "hello"}),)).await.unwrap();
        until(5_000, "the inserted document", || docs.find_one(&id).is_some()).await;
        // Meteor 3.0.4 does not resume sessions: a new one, and the
        // documents held through it without a flicker.
        let session = conn.id().unwrap();
        let min = Rc::new(std::cell::Cell::new(usize::MAX));
        let (m, i) = (min.clone(), items.clone());
        let _watch = items.on_change(move |_| m.set(m.get().min(i.len())));
        meteor_control(port, "/control/drop").await;
        until(10_000, "a new session", || conn.connected() && conn.id().is_some_and(|s| s != session)).await;
        assert!(!conn.resumed());
        assert_eq!(conn.call::<i64>("add", (1, 1)).await, Ok(2));
        assert_eq!(items.len(), 3);
        assert_eq!(min.get(), usize::MAX, "no change at all: the re-sent subscription brought the same documents");
        assert_eq!(docs.find_one(&id).unwrap()["text"], "hello");
        conn.close();
    });
    drop(meteor);
}

/// A TLS front for the test server, with a fresh self-signed certificate
/// for `localhost`: returns its port and the certificate (PEM).
async fn tls_front(backend: SocketAddr) -> (u16, String) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut plain = tokio::net::TcpStream::connect(backend).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (port, cert.cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_verifies_the_certificate_against_the_trust_store() {
    let (_server, addr) = server::start(Default::default()).await;
    let (trusted, pem) = tls_front(addr).await;
    let (untrusted, _) = tls_front(addr).await;
    // The trust store is the system's, or SSL_CERT_FILE: here only the first certificate.
    let file = std::env::temp_dir().join(format!("ddp-live-test-ca-{}.pem", std::process::id()));
    std::fs::write(&file, pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &file);
    LocalSet::new()
        .run_until(async move {
            let conn = connect(&format!("wss://localhost:{trusted}/t/n-tls/websocket"), fast()).unwrap();
            assert_eq!(conn.url(), format!("wss://localhost:{trusted}/t/n-tls/websocket"));
            connected(&conn).await;
            assert_eq!(conn.call::<i64>("add", (2, 3)).await, Ok(5));
            conn.close();
            let refused =
                connect(&format!("wss://localhost:{untrusted}/t/n-tls/websocket"), Options { max_retries: Some(1), ..fast() }).unwrap();
            let (seen, _listen) = events(&refused);
            until(5_000, "failed", || refused.status().status == ConnectionState::Failed).await;
            assert!(!refused.status().connected);
            let errors = error_texts(&seen);
            assert!(errors.iter().any(|e| e.contains("certificate")), "the app hears why: {errors:?}");
        })
        .await;
    let _ = std::fs::remove_file(file);
    assert_eq!(server::control(addr, "/control/n-tls/stats").await["accepted"], 1, "only the trusted front reached the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_go_with_the_upgrade_and_bad_ones_are_refused_at_once() {
    let (_server, addr) = server::start(Default::default()).await;
    let bad = Options { headers: vec![("X-Bad".into(), "a\r\nb".into())], ..fast() };
    assert_eq!(connect(&url(addr, "n-headers"), bad).unwrap_err().code(), "invalid-options");
    LocalSet::new()
        .run_until(async move {
            let headers =
                vec![("User-Agent".to_owned(), "ddp-live-test/1".to_owned()), ("Origin".to_owned(), "https://app.example.com".to_owned())];
            let conn = connect(&url(addr, "n-headers"), Options { headers, ..fast() }).unwrap();
            let info: Value = conn.call("connection", ()).await.unwrap();
            assert_eq!(info["httpHeaders"]["user-agent"], "ddp-live-test/1");
            assert_eq!(info["id"], conn.id().unwrap().as_str());
            conn.close();
        })
        .await;
}

#[test]
fn a_server_that_never_answers_the_upgrade_is_let_go_at_the_connect_timeout() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    LocalSet::new().block_on(&runtime, async {
        // Accepts TCP, never answers the HTTP upgrade; reports when the client hangs up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hung_up, mut seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let hung_up = hung_up.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 1024];
                    while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                    let _ = hung_up.send(());
                });
            }
        });
        let options = Options { connect_timeout_ms: 200.0, max_retries: Some(0), ..fast() };
        let conn = connect(&url(addr, "mute"), options).unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(3), seen.recv()).await;
        assert!(matches!(waited, Ok(Some(()))), "the socket of the timed-out attempt was closed");
        until(1_000, "failed", || conn.status().status == ConnectionState::Failed).await;
    });
}

/// The texts of the `Error` events among `seen`.
fn error_texts(seen: &RefCell<Vec<ddp_live::Event>>) -> Vec<String> {
    seen.borrow()
        .iter()
        .filter_map(|e| match e {
            ddp_live::Event::Error(err) => Some(err.to_string()),
            _ => None,
        })
        .collect()
}

/// Records the connection's events.
fn events(conn: &Connection) -> (Rc<RefCell<Vec<ddp_live::Event>>>, ddp_live::ListenerHandle) {
    let seen: Rc<RefCell<Vec<ddp_live::Event>>> = Rc::default();
    let s = seen.clone();
    let handle = conn.on_event(move |e| s.borrow_mut().push(e.clone()));
    (seen, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_catch_a_silent_server_and_a_clean_close_is_retried() {
    use ddp_live::{DisconnectReason, Event};
    let (_server, addr) = server::start(Default::default()).await;
    LocalSet::new()
        .run_until(async move {
            let options = Options { heartbeat_interval_ms: 200.0, heartbeat_timeout_ms: 300.0, ..fast() };
            let conn = connect(&url(addr, "n-beat"), options).unwrap();
            connected(&conn).await;
            let (seen, _h) = events(&conn);
            server::control(addr, "/control/n-beat/silent?on=true").await;
            until(5_000, "the dead link noticed", || !conn.connected()).await;
            assert_eq!(seen.borrow()[0], Event::Disconnected { reason: DisconnectReason::PingTimeout });
            server::control(addr, "/control/n-beat/silent?on=false").await;
            connected(&conn).await;
            seen.borrow_mut().clear();
            server::control(addr, "/control/n-beat/disconnect").await;
            until(5_000, "the close", || !conn.connected()).await;
            assert_eq!(seen.borrow()[0], Event::Disconnected { reason: DisconnectReason::ServerDisconnect });
            connected(&conn).await;
            conn.close();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_negotiated_and_a_mismatch_fails_for_good() {
    let (_server, addr) = server::start(Default::default()).await;
    server::control(addr, "/control/n-pre2/versions?v=pre2").await;
    server::control(addr, "/control/n-v2/versions?v=2").await;
    LocalSet::new()
        .run_until(async move {
            let conn = connect(&url(addr, "n-pre2"), fast()).unwrap();
            connected(&conn).await;
            assert_eq!(conn.status().retry_count, 0, "negotiation is not a retry");
            conn.close();
            let conn = connect(&url(addr, "n-v2"), fast()).unwrap();
            until(5_000, "failed", || conn.status().status == ConnectionState::Failed).await;
            assert_eq!(conn.status().reason.as_deref(), Some("DDP version negotiation failed; server requested version 2"));
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(server::control(addr, "/control/n-v2/stats").await["accepted"], 1, "no retry after a permanent failure");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_calls_go_out_in_order_after_the_reconnect_hooks() {
    let (_server, addr) = server::start(Default::default()).await;
    server::control(addr, "/control/n-order/resume?on=false").await;
    LocalSet::new()
        .run_until(async move {
            let conn = connect(&url(addr, "n-order"), fast()).unwrap();
            connected(&conn).await;
            let first = conn.id().unwrap();
            let order: Rc<RefCell<Vec<String>>> = Rc::default();
            let o = order.clone();
            let _hook = conn.on_reconnect(move |c| {
                let o = o.clone();
                let call = c.call::<Value>("echo", ("hook",));
                tokio::task::spawn_local(async move {
                    let answer = call.await.unwrap().to_string();
                    o.borrow_mut().push(answer);
                });
            });
            conn.disconnect();
            assert_eq!(open_sockets(addr, "n-order", 0).await, 0, "disconnect() closed the socket");
            let calls: Vec<_> = (0..50).map(|i| conn.call::<i64>("echo", (i,))).collect();
            assert_eq!(conn.outbox().queued, 50);
            conn.reconnect();
            let mut results = Vec::new();
            for call in calls {
                results.push(call.await.unwrap());
            }
            assert_eq!(results, (0..50).collect::<Vec<i64>>(), "each call got its own answer, in order");
            assert_ne!(conn.id().unwrap(), first, "a new session");
            until(1_000, "the hook's call", || !order.borrow().is_empty()).await;
            assert_eq!(*order.borrow(), vec!["\"hook\"".to_owned()]);
            conn.close();
        })
        .await;
}
