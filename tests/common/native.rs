//! The native side of the test helpers (see `browser.rs` for the same names
//! in the browser): the test server's address read at run time (or a
//! server in-process), HTTP/1.1 over a tokio `TcpStream` for the control
//! endpoints, tokio's timers, a `LocalSet` for the `!Send` connection, and
//! Meteor's own servers (the fixtures beside the repository).

use serde_json::Value;
use std::future::Future;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// host:port of the test server: `DDP_TEST_SERVER` (scripts/test.sh sets it
/// to the server it started, the one the browser tests use), else a server
/// started in-process on a free port, once per test binary, so that a plain
/// `cargo test --features native` needs nothing started beforehand.
pub fn server() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| match std::env::var("DDP_TEST_SERVER") {
        Ok(addr) if !addr.is_empty() => addr,
        _ => in_process_server(),
    })
}

/// The test server on a thread of its own (each test has its own runtime,
/// which ends with the test), for the rest of the test binary's life.
fn in_process_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address").to_string();
    listener.set_nonblocking(true).expect("a non-blocking listener");
    std::thread::Builder::new()
        .name("ddp-test-server".into())
        .spawn(move || {
            // Two workers, as the server binary has at least: bcrypt must not stall the others.
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                ddp_test_server::Server::new(ddp_test_server::Config::default()).serve(listener).await.expect("the test server runs");
            });
        })
        .expect("a thread for the test server");
    addr
}

/// A random number in `0..n`.
pub fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    // Each RandomState has fresh keys.
    RandomState::new().hash_one(std::time::SystemTime::now()) % n
}

/// One HTTP/1.1 request without a body to `addr` (host:port): the status and
/// the body (a chunked one decoded).
pub async fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("the request written");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("the response read");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    (status, if chunked { unchunk(body) } else { body.to_owned() })
}

/// The body of a `Transfer-Encoding: chunked` response.
fn unchunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// The JSON answer of a control endpoint that answered 200.
async fn control_at(addr: &str, method: &str, path: &str) -> Value {
    let (status, body) = http(addr, method, path).await;
    assert_eq!(status, 200, "{method} {path} answered {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Calls the test server's control endpoint and returns its JSON answer.
pub async fn control(scenario: &str, action: &str) -> Value {
    control_at(server(), "POST", &format!("/control/{scenario}/{action}")).await
}

pub async fn sleep(ms: u32) {
    tokio::time::sleep(Duration::from_millis(ms.into())).await;
}

/// Runs `fut` on the test's `LocalSet`.
pub fn spawn_local(fut: impl Future<Output = ()> + 'static) {
    drop(tokio::task::spawn_local(fut));
}

/// The `crate` of `#[tokio::test(crate = "common::local_set")]`: tokio's
/// test attribute builds its runtime with `runtime::Builder` and pins the
/// test's future with `pin!` from the crate it is given. Here the runtime
/// it gets runs the test inside a [`LocalSet`](tokio::task::LocalSet), where
/// a `Connection` (which is `!Send`, as in the browser) can be made.
pub mod local_set {
    pub use tokio::pin;

    pub mod runtime {
        /// Builds a current-thread tokio runtime (timers and I/O on).
        pub struct Builder;

        impl Builder {
            pub fn new_current_thread() -> Builder {
                Builder
            }

            pub fn enable_all(&mut self) -> &mut Builder {
                self
            }

            pub fn build(&mut self) -> std::io::Result<Runtime> {
                tokio::runtime::Builder::new_current_thread().enable_all().build().map(Runtime)
            }
        }

        pub struct Runtime(tokio::runtime::Runtime);

        impl Runtime {
            /// Runs `test` to its end inside a fresh `LocalSet`.
            pub fn block_on<F: std::future::Future>(&self, test: F) -> F::Output {
                tokio::task::LocalSet::new().block_on(&self.0, test)
            }
        }
    }
}

/// Which of Meteor's servers beside the repository (found and started by
/// `server/meteor/fixture.mjs`, as for the JavaScript tests).
#[derive(Clone, Copy, Debug)]
pub enum Fixture {
    /// `../shared/meteor-server`: Meteor 3.0.4's ddp-server and its test
    /// methods and publications (`add`, `newId`, `items`, `docs`, …).
    Server,
    /// `../shared/meteor-accounts`: the same with accounts-base and
    /// accounts-password.
    Accounts,
}

/// One of Meteor's servers, started for one test and stopped when dropped.
pub struct Meteor {
    /// `node server/meteor/fixture-server.mjs`, which stops the server when
    /// its stdin closes: when this is dropped, or when the test binary ends
    /// however it ends.
    child: Child,
    stdin: Option<ChildStdin>,
    /// host:port
    addr: String,
    /// The DDP WebSocket URL.
    pub ws: String,
}

impl Meteor {
    /// Starts the fixture on a free port, or, when it is absent, prints
    /// "skipped: no Meteor fixture" and gives None (so a plain clone passes).
    pub fn start(fixture: Fixture) -> Option<Meteor> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/server/meteor/fixture-server.mjs");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let which = match fixture {
            Fixture::Server => "server",
            Fixture::Accounts => "accounts",
        };
        let spawned = Command::new("node")
            .args([script, which, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            // Without Node there is no fixture to run.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return skipped(),
            Err(e) => panic!("node {script}: {e}"),
        };
        // Its line about the server (after what an `npm install` of the
        // fixture's dependencies may have printed).
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("its stdout")).lines();
        let started: Value = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("{script} {which} ended without starting the server: {:?}", child.wait()),
            };
            if line == SKIPPED {
                let _ = child.wait();
                return skipped();
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(started) if started["host"].is_string() => break started,
                _ => eprintln!("{line}"),
            }
        };
        let stdin = child.stdin.take();
        let addr = started["host"].as_str().unwrap_or_default().to_owned();
        Some(Meteor { child, stdin, ws: format!("ws://{addr}/websocket"), addr })
    }

    /// [`Meteor::start`], and a connection to it (fast retries), not yet
    /// connected, as [`open`](super::open) gives one to the test server.
    pub fn open(fixture: Fixture) -> Option<(Meteor, ddp_live::Connection)> {
        let meteor = Meteor::start(fixture)?;
        let conn = ddp_live::connect(&meteor.ws, super::fast()).expect("valid URL");
        Some((meteor, conn))
    }

    /// A GET on one of the fixture's control endpoints (`stats`, `drop`, …).
    pub async fn control(&self, what: &str) -> Value {
        control_at(&self.addr, "GET", &format!("/control/{what}")).await
    }
}

const SKIPPED: &str = "skipped: no Meteor fixture";

fn skipped() -> Option<Meteor> {
    // Straight to stderr: the test harness would hide a println of a passing test.
    let _ = writeln!(std::io::stderr(), "{SKIPPED}");
    None
}

impl Drop for Meteor {
    fn drop(&mut self) {
        // Its stdin closed, fixture-server.mjs stops the server and exits.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
