//! What only the native host has, end to end against the test server (the
//! scenarios both hosts share, Meteor's own servers among them, are in
//! lifecycle.rs, methods.rs, subscriptions.rs, accounts.rs, queries.rs,
//! rooms.rs and resumption.rs, which run natively too): the `Send`
//! [`SharedConnection`] from a multi-threaded runtime, why a connection was
//! refused, `wss://` against the trust store, upgrade headers, and a server
//! that never answers the upgrade.
#![cfg(not(target_arch = "wasm32"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, ConnectionState, Options, SharedConnection};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_is_used_from_spawned_tasks_and_closes_when_dropped() {
    let sc = scenario("n-shared");
    let conn = SharedConnection::connect(&ws_url(&sc), fast()).unwrap();
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
    assert_eq!(control(&sc, "stats").await["connections"], 1);
    drop(conn);
    let mut open = Value::Null;
    for _ in 0..200 {
        open = control(&sc, "stats").await["connections"].clone();
        if open == 0 {
            break;
        }
        sleep(10).await;
    }
    assert_eq!(open, 0, "dropping the last clone closed the socket");
}

#[tokio::test(crate = "common::local_set")]
async fn a_connection_without_a_server_retries_and_reports_why() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let conn = connect(&format!("ws://{addr}/websocket"), Options { max_retries: Some(2), ..fast() }).unwrap();
    let rec = record(&conn);
    wait_status(&conn, 5_000, "failed", |s| s.status == ConnectionState::Failed).await;
    assert_eq!(conn.status().retry_count, 2);
    let errors = rec.error_texts();
    assert_eq!(errors.len(), 3, "the first attempt and two retries: {errors:?}");
    assert!(errors.iter().all(|e| e.contains("refused")), "the app hears why: {errors:?}");
}

/// A TLS front for the test server, with a fresh self-signed certificate
/// for `localhost`: returns its port and the certificate (PEM).
async fn tls_front(backend: &'static str) -> (u16, String) {
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

#[tokio::test(crate = "common::local_set")]
async fn wss_verifies_the_certificate_against_the_trust_store() {
    let sc = scenario("n-tls");
    let (trusted, pem) = tls_front(server()).await;
    let (untrusted, _) = tls_front(server()).await;
    // The trust store is the system's, or SSL_CERT_FILE: here only the first certificate.
    let file = std::env::temp_dir().join(format!("ddp-live-test-ca-{}.pem", std::process::id()));
    std::fs::write(&file, pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &file);
    let conn = connect(&format!("wss://localhost:{trusted}/t/{sc}/websocket"), fast()).unwrap();
    assert_eq!(conn.url(), format!("wss://localhost:{trusted}/t/{sc}/websocket"));
    wait_connected(&conn).await;
    assert_eq!(conn.call::<i64>("add", (2, 3)).await, Ok(5));
    conn.close();
    let refused = connect(&format!("wss://localhost:{untrusted}/t/{sc}/websocket"), Options { max_retries: Some(1), ..fast() }).unwrap();
    let rec = record(&refused);
    wait_status(&refused, 5_000, "failed", |s| s.status == ConnectionState::Failed).await;
    assert!(!refused.status().connected);
    let errors = rec.error_texts();
    assert!(errors.iter().any(|e| e.contains("certificate")), "the app hears why: {errors:?}");
    let _ = std::fs::remove_file(file);
    assert_eq!(control(&sc, "stats").await["accepted"], 1, "only the trusted front reached the server");
}

#[tokio::test(crate = "common::local_set")]
async fn headers_go_with_the_upgrade_and_bad_ones_are_refused_at_once() {
    let sc = scenario("n-headers");
    let bad = Options { headers: vec![("X-Bad".into(), "a\r\nb".into())], ..fast() };
    assert_eq!(connect(&ws_url(&sc), bad).unwrap_err().code(), "invalid-options");
    let headers =
        vec![("User-Agent".to_owned(), "ddp-live-test/1".to_owned()), ("Origin".to_owned(), "https://app.example.com".to_owned())];
    let conn = connect(&ws_url(&sc), Options { headers, ..fast() }).unwrap();
    let info: Value = conn.call("connection", ()).await.unwrap();
    assert_eq!(info["httpHeaders"]["user-agent"], "ddp-live-test/1");
    assert_eq!(info["id"], conn.id().unwrap().as_str());
    conn.close();
}

#[tokio::test(crate = "common::local_set")]
async fn a_server_that_never_answers_the_upgrade_is_let_go_at_the_connect_timeout() {
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
    let conn = connect(&format!("ws://{addr}/websocket"), options).unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3), seen.recv()).await;
    assert!(matches!(waited, Ok(Some(()))), "the socket of the timed-out attempt was closed");
    wait_status(&conn, 1_000, "failed", |s| s.status == ConnectionState::Failed).await;
}
