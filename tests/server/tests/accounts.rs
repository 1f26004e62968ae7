//! The test server's accounts, on the wire, as Meteor's accounts packages
//! answer: password and resume logins, errors, the current-user document,
//! `this.userId`, logout, and the control actions.

mod common;
use common::*;
use ddp_test_server::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn password(p: &str) -> Value {
    json!({"digest": format!("{:x}", Sha256::digest(p.as_bytes())), "algorithm": "sha-256"})
}

/// Reads the next `n` messages: an accounts method's answer, in Meteor's
/// order. Returns `id`'s result, the data messages, and the order as
/// `msg` names.
async fn answer_and_data(c: &mut Ws, id: &str, n: usize) -> (Value, Vec<Value>, Vec<String>) {
    let (mut result, mut data, mut order) = (None, Vec::new(), Vec::new());
    for _ in 0..n {
        let m = recv(c).await;
        order.push(m["msg"].as_str().unwrap_or_default().to_owned());
        match m["msg"].as_str() {
            Some("result") if m["id"] == id => result = Some(m),
            Some("updated") => assert_eq!(m["methods"], json!([id])),
            Some("added" | "changed" | "removed") => data.push(m),
            _ => panic!("unexpected {m}"),
        }
    }
    (result.unwrap_or_default(), data, order)
}

#[tokio::test]
async fn password_login_resume_whoami_logout_as_meteor() {
    let (_s, addr) = start(Config::default()).await;
    let created = control(addr, "/control/a/accounts?op=create&username=ada&email=ada@example.com&password=pw").await;
    let uid = created["id"].as_str().expect("a user id").to_owned();
    let mut c = ws(addr, "/t/a/websocket").await;
    handshake(&mut c).await;

    call(&mut c, "1", "whoami", json!([])).await;
    assert_eq!(answer(&mut c, "1").await["result"], Value::Null);
    // Errors: typed 403s, ambiguous as Meteor 3.0.4's by default.
    const AMBIGUOUS: &str = "Something went wrong. Please check your credentials.";
    call(&mut c, "2", "login", json!([{"user": {"username": "nobody"}, "password": password("pw")}])).await;
    let (e, _, order) = answer_and_data(&mut c, "2", 2).await;
    assert_eq!(e["error"]["reason"], AMBIGUOUS);
    assert_eq!(order, ["updated", "result"]);
    call(&mut c, "3", "login", json!([{"user": {"username": "ada"}, "password": password("wrong")}])).await;
    let e = answer(&mut c, "3").await;
    assert_eq!((e["error"]["error"].clone(), e["error"]["reason"].clone()), (json!(403), json!(AMBIGUOUS)));
    // Precise texts when the server turns them on.
    control(addr, "/control/a/accounts?op=ambiguous&on=false").await;
    call(&mut c, "2b", "login", json!([{"user": {"username": "nobody"}, "password": password("pw")}])).await;
    assert_eq!(answer(&mut c, "2b").await["error"]["reason"], "User not found");
    call(&mut c, "3b", "login", json!([{"user": {"username": "ada"}, "password": password("wrong")}])).await;
    assert_eq!(answer(&mut c, "3b").await["error"]["reason"], "Incorrect password");
    // A good password: {id, token, tokenExpires, type}, then the user document.
    call(&mut c, "4", "login", json!([{"user": {"email": "ADA@example.com"}, "password": password("pw")}])).await;
    let (r, data, order) = answer_and_data(&mut c, "4", 3).await;
    assert_eq!(order, ["updated", "result", "added"], "Meteor's order: the document after the result");
    assert_eq!(r["result"]["id"], json!(uid));
    assert_eq!(r["result"]["type"], "password");
    let token = r["result"]["token"].as_str().expect("a token").to_owned();
    let expires = r["result"]["tokenExpires"]["$date"].as_f64().expect("an EJSON date");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as f64;
    assert!((expires - now - 90.0 * 86_400_000.0).abs() < 60_000.0, "90 days from now");
    assert_eq!(
        data,
        vec![
            json!({"msg":"added","collection":"users","id":uid,"fields":{"username":"ada","emails":[{"address":"ada@example.com","verified":false}]}})
        ]
    );
    call(&mut c, "5", "whoami", json!([])).await;
    assert_eq!(answer(&mut c, "5").await["result"], json!(uid));
    // Stored hashed, as Meteor stores them.
    let users = control(addr, "/control/a/accounts?op=users").await;
    let hashed = base64_sha256(&token);
    assert_eq!(users[0]["hashedTokens"], json!([hashed]));
    assert!(users[0]["bcrypt"].as_str().unwrap().starts_with("$2"));

    // Another session resumes with the token.
    let mut d = ws(addr, "/t/a/websocket").await;
    handshake(&mut d).await;
    call(&mut d, "1", "login", json!([{"resume": token}])).await;
    let (r, data, order) = answer_and_data(&mut d, "1", 3).await;
    assert_eq!(r["result"]["token"], json!(token));
    assert_eq!(r["result"]["type"], "resume");
    assert_eq!(data.len(), 1);
    assert_eq!(order, ["updated", "result", "added"]);
    // Again on the logged-in session: the document goes and comes back.
    call(&mut d, "2", "login", json!([{"resume": token}])).await;
    let (_, _, order) = answer_and_data(&mut d, "2", 4).await;
    assert_eq!(order, ["removed", "updated", "result", "added"]);
    // getNewToken: the same.
    call(&mut d, "3", "getNewToken", json!([])).await;
    let (r, _, order) = answer_and_data(&mut d, "3", 4).await;
    assert_eq!(order, ["removed", "updated", "result", "added"]);
    assert_ne!(r["result"]["token"], json!(token));
    // No logoutOtherClients method in Meteor 3.0.4.
    call(&mut d, "4", "logoutOtherClients", json!([])).await;
    assert_eq!(answer(&mut d, "4").await["error"]["error"], json!(404));

    // logout: the document goes, and the token no longer resumes.
    call(&mut c, "6", "logout", json!([])).await;
    let (r, data, order) = answer_and_data(&mut c, "6", 3).await;
    assert!(r.get("result").is_none() && r.get("error").is_none());
    assert_eq!(data, vec![json!({"msg":"removed","collection":"users","id":uid})]);
    assert_eq!(order, ["removed", "updated", "result"]);
    call(&mut c, "7", "whoami", json!([])).await;
    assert_eq!(answer(&mut c, "7").await["result"], Value::Null);
    // (On a new connection: `c` used its 5 logins of the rate limit's window.)
    let mut e = ws(addr, "/t/a/websocket").await;
    handshake(&mut e).await;
    call(&mut e, "1", "login", json!([{"resume": token}])).await;
    assert_eq!(answer(&mut e, "1").await["error"]["reason"], "You've been logged out by the server. Please log in again.");

    let log = control(addr, "/control/a/accounts?op=log").await;
    let names: Vec<(&str, bool)> =
        log.as_array().unwrap().iter().map(|e| (e["method"].as_str().unwrap(), e["userId"].is_string())).collect();
    assert_eq!(
        names[..7],
        [("whoami", false), ("login", false), ("login", false), ("login", false), ("login", false), ("login", false), ("whoami", true)]
    );
}

fn base64_sha256(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn create_user_logs_in_and_revoke_and_expire_end_logins() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/t/b/websocket").await;
    handshake(&mut c).await;
    call(&mut c, "1", "createUser", json!([{"username": "bob", "password": password("pw"), "profile": {"name": "Bob"}}])).await;
    let (r, data, order) = answer_and_data(&mut c, "1", 3).await;
    assert_eq!(order, ["updated", "result", "added"]);
    let token = r["result"]["token"].as_str().expect("logged in").to_owned();
    assert_eq!(data[0]["fields"], json!({"username": "bob", "profile": {"name": "Bob"}}));
    call(&mut c, "2", "createUser", json!([{"username": "BOB", "password": password("pw")}])).await;
    assert_eq!(answer(&mut c, "2").await["error"]["reason"], "Something went wrong. Please check your credentials.");
    call(&mut c, "3", "createUser", json!([{"password": password("pw")}])).await;
    assert_eq!(answer(&mut c, "3").await["error"]["error"], json!(400));

    // expire: the token no longer resumes, with Meteor's reason.
    control(addr, "/control/b/accounts?op=expire&user=bob").await;
    let mut d = ws(addr, "/t/b/websocket").await;
    handshake(&mut d).await;
    call(&mut d, "1", "login", json!([{"resume": token}])).await;
    assert_eq!(answer(&mut d, "1").await["error"]["reason"], "Your session has expired. Please log in again.");

    // revoke: the session logged in with it is closed.
    control(addr, "/control/b/accounts?op=revoke&user=bob").await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use futures_util::StreamExt;
        loop {
            match c.next().await {
                None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return true,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true));
}

#[tokio::test]
async fn the_sixth_login_of_a_connection_within_ten_seconds_is_rate_limited_as_meteor() {
    let (_s, addr) = start(Config::default()).await;
    control(addr, "/control/r/accounts?op=create&username=ada&password=pw").await;
    let mut c = ws(addr, "/t/r/websocket").await;
    handshake(&mut c).await;
    // createUser is counted apart (Meteor's rule counts per method name).
    call(&mut c, "0", "createUser", json!([{"username": "ada", "password": password("pw")}])).await;
    assert_eq!(answer(&mut c, "0").await["error"]["error"], json!(403));
    for i in 1..=5 {
        call(&mut c, &i.to_string(), "login", json!([{"user": {"username": "ada"}, "password": password("wrong")}])).await;
        assert_eq!(answer(&mut c, &i.to_string()).await["error"]["error"], json!(403), "login {i}");
    }
    call(&mut c, "6", "login", json!([{"user": {"username": "ada"}, "password": password("pw")}])).await;
    let e = answer(&mut c, "6").await["error"].clone();
    assert_eq!(e["error"], "too-many-requests");
    assert!(e["reason"].as_str().unwrap().starts_with("Error, too many requests. Please slow down. You must wait "), "{e}");
    let reset = e["details"]["timeToReset"].as_u64().expect("timeToReset");
    assert!(reset <= 10_000, "{reset}");
    // Another connection has its own count.
    let mut d = ws(addr, "/t/r/websocket").await;
    handshake(&mut d).await;
    call(&mut d, "1", "login", json!([{"user": {"username": "ada"}, "password": password("pw")}])).await;
    assert_eq!(answer(&mut d, "1").await["result"]["type"], "password");
}
