//! The test server's seeded ids against Meteor's own, from the Meteor
//! fixture (../shared/meteor-server beside the repository, Meteor 3.0.4's
//! ddp-server under Node): for many random seeds and several scopes, the
//! fixture's `newId(scope)` — `DDP.randomStream(scope).id()` for the call's
//! `randomSeed` — over a raw WebSocket equals the test server's derivation
//! and its own `newId` over the wire; and several draws of each stream equal
//! what Meteor's `random` package draws (run by the fixture's shim).
//! Without the fixture: prints `skipped: no Meteor fixture` and passes.

mod common;

use common::*;
use ddp_test_server::random::{stream, Alea};
use ddp_test_server::Config;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `$METEOR_FIXTURE`, else `../shared/meteor-server` from the repository
/// root, or from a directory above it (a git worktree lives deeper than a
/// clone).
fn fixture() -> Option<PathBuf> {
    let dir = match std::env::var_os("METEOR_FIXTURE") {
        Some(dir) => Some(PathBuf::from(dir)).filter(|d| d.join("run.sh").is_file())?,
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().ok()?;
            root.ancestors().skip(1).map(|d| d.join("shared/meteor-server")).find(|d| d.join("run.sh").is_file())?
        }
    };
    ensure_deps(&dir);
    Some(dir)
}

/// Installs the fixture's npm dependencies when they are missing, as its
/// run.sh does (scripts/setup.sh does it first; this covers a bare `cargo test`).
fn ensure_deps(dir: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if !dir.join("node_modules/@meteorjs/reify").is_dir() {
            let npm = Command::new("npm").current_dir(dir).args(["install", "--no-audit", "--no-fund", "--loglevel=error"]).status();
            assert!(npm.is_ok_and(|s| s.success()), "npm install in the Meteor fixture failed");
        }
    });
}

/// The fixture running on a port of ours; killed when dropped.
struct Fixture {
    pid: String,
    port: u16,
}

impl Fixture {
    fn start(dir: &Path) -> Fixture {
        for port in 4511..=4519 {
            let out = Command::new(dir.join("run.sh")).env("PORT", port.to_string()).output().expect("run.sh runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                let pid = stdout.lines().last().unwrap_or_default().trim().to_owned();
                assert!(pid.parse::<u32>().is_ok(), "run.sh printed its PID: {stdout:?}");
                return Fixture { pid, port };
            }
        }
        panic!("the Meteor fixture did not start on any port of 4511-4519");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

const SCOPES: [&str; 6] = ["/collection/todos", "x", "", "ünïcødé 😀 scope", "/rpc/doThing", "items"];

/// Seeds as Meteor makes them (20 hex digits), and arbitrary strings.
fn seeds(n: usize) -> Vec<String> {
    let mut rng = rand::rng();
    (0..n)
        .map(|i| match i % 4 {
            0..=1 => (0..20).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap()).collect(),
            2 => (0..rng.random_range(1..30)).map(|_| rng.random_range(' '..='~')).collect(),
            _ => (0..rng.random_range(1..8)).map(|_| rng.random::<char>()).collect(),
        })
        .collect()
}

/// Calls `newId(scope)` with each seed on a server, all at once; the ids in order.
async fn new_ids(url: &str, cases: &[(String, &str)]) -> Vec<String> {
    let mut c = tokio_tungstenite::connect_async(url).await.expect("connects").0;
    handshake(&mut c).await;
    for (i, (seed, scope)) in cases.iter().enumerate() {
        let m = json!({"msg":"method","id":i.to_string(),"method":"newId","params":[scope],"randomSeed":seed});
        send(&mut c, m).await;
    }
    let mut got: HashMap<String, String> = HashMap::new();
    while got.len() < cases.len() {
        let m = recv(&mut c).await;
        if m["msg"] == "result" {
            let id = m["result"].as_str().unwrap_or_else(|| panic!("an id: {m}"));
            got.insert(m["id"].as_str().unwrap().to_owned(), id.to_owned());
        }
    }
    (0..cases.len()).map(|i| got.remove(&i.to_string()).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_ids_are_meteors() {
    let Some(dir) = fixture() else {
        println!("skipped: no Meteor fixture");
        return;
    };
    let meteor = Fixture::start(&dir);
    let cases: Vec<(String, &str)> = seeds(200).into_iter().enumerate().map(|(i, seed)| (seed, SCOPES[i % SCOPES.len()])).collect();
    let from_meteor = new_ids(&format!("ws://127.0.0.1:{}/websocket", meteor.port), &cases).await;
    let (_s, addr) = start(Config::default()).await;
    let from_test_server = new_ids(&format!("ws://{addr}/websocket"), &cases).await;
    for (((seed, scope), meteor_id), ours) in cases.iter().zip(&from_meteor).zip(&from_test_server) {
        // The fixture's newId names an empty scope "/collection/docs".
        let scope = if scope.is_empty() { "/collection/docs" } else { scope };
        assert_eq!(&stream(seed, scope).id(), meteor_id, "seed {seed:?}, scope {scope:?}");
        assert_eq!(ours, meteor_id, "the test server's newId, seed {seed:?}, scope {scope:?}");
    }
    assert_eq!(from_meteor.len(), 200);
}

/// Several draws of each stream, from Meteor's `random` package run by the
/// fixture's shim under Node: three ids, then three fractions, for
/// `Random.createWithSeeds(seed, scope)` and for `DDP.randomStream(scope)`
/// (which names an empty scope "default").
#[test]
fn several_draws_are_meteors() {
    let Some(dir) = fixture() else {
        println!("skipped: no Meteor fixture");
        return;
    };
    let cases: Vec<(String, &str)> = seeds(120).into_iter().enumerate().map(|(i, seed)| (seed, SCOPES[i % SCOPES.len()])).collect();
    let script = r#"
        const M = require(process.argv[1] + "/shim.js");
        const cases = JSON.parse(process.argv[2]);
        const draw = (r) => [r.id(), r.id(), r.id(), r.fraction(), r.fraction(), r.fraction()];
        const out = cases.map(([seed, scope]) => [
            draw(M.Random.createWithSeeds(seed, scope)),
            draw(M.DDPCommon.RandomStream.get({ randomSeed: seed }, scope)),
        ]);
        process.stdout.write(JSON.stringify(out));
        process.exit(0);
    "#;
    let out = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&dir)
        .arg(serde_json::to_string(&cases).unwrap())
        .output()
        .expect("node runs the fixture's shim");
    assert!(out.status.success(), "node: {}", String::from_utf8_lossy(&out.stderr));
    let meteor: Vec<[Vec<Value>; 2]> = serde_json::from_slice(&out.stdout).expect("JSON from node");
    let draw = |mut a: Alea| {
        let mut v: Vec<Value> = (0..3).map(|_| json!(a.id())).collect();
        v.extend((0..3).map(|_| json!(a.fraction())));
        v
    };
    for ((seed, scope), [created, streamed]) in cases.iter().zip(&meteor) {
        assert_eq!(&draw(Alea::new(&[seed, scope])), created, "createWithSeeds({seed:?}, {scope:?})");
        assert_eq!(&draw(stream(seed, scope)), streamed, "randomStream({scope:?}) with seed {seed:?}");
    }
    assert_eq!(meteor.len(), 120);
}
