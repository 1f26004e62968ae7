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

/// Reads messages until `id`'s result and updated arrived; returns the
/// result and every data message seen meanwhile.
async fn answer_and_data(c: &mut Ws, id: &str) -> (Value, Vec<Value>) {
    let (mut result, mut updated, mut data) = (None, false, Vec::new());
    while result.is_none() || !updated {
        let m = recv(c).await;
        match m["msg"].as_str() {
            Some("result") if m["id"] == id => result = Some(m),
            Some("updated") => updated = true,
            Some("added" | "changed" | "removed") => data.push(m),
            _ => {}
        }
    }
    (result.unwrap_or_default(), data)
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
    // Errors: typed 403s, as Meteor's.
    call(&mut c, "2", "login", json!([{"user": {"username": "nobody"}, "password": password("pw")}])).await;
    assert_eq!(answer(&mut c, "2").await["error"]["reason"], "User not found");
    call(&mut c, "3", "login", json!([{"user": {"username": "ada"}, "password": password("wrong")}])).await;
    let e = answer(&mut c, "3").await;
    assert_eq!((e["error"]["error"].clone(), e["error"]["reason"].clone()), (json!(403), json!("Incorrect password")));
    // A good password: {id, token, tokenExpires} and the user document.
    call(&mut c, "4", "login", json!([{"user": {"email": "ADA@example.com"}, "password": password("pw")}])).await;
    let (r, data) = answer_and_data(&mut c, "4").await;
    assert_eq!(r["result"]["id"], json!(uid));
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
    let (r, data) = answer_and_data(&mut d, "1").await;
    assert_eq!(r["result"]["token"], json!(token));
    assert_eq!(data.len(), 1);

    // logout: the document goes, and the token no longer resumes.
    call(&mut c, "6", "logout", json!([])).await;
    let (r, data) = answer_and_data(&mut c, "6").await;
    assert!(r.get("result").is_none() && r.get("error").is_none());
    assert_eq!(data, vec![json!({"msg":"removed","collection":"users","id":uid})]);
    call(&mut c, "7", "whoami", json!([])).await;
    assert_eq!(answer(&mut c, "7").await["result"], Value::Null);
    call(&mut c, "8", "login", json!([{"resume": token}])).await;
    assert_eq!(answer(&mut c, "8").await["error"]["reason"], "You've been logged out by the server. Please log in again.");

    let log = control(addr, "/control/a/accounts?op=log").await;
    let names: Vec<(&str, bool)> =
        log.as_array().unwrap().iter().map(|e| (e["method"].as_str().unwrap(), e["userId"].is_string())).collect();
    assert_eq!(names[..5], [("whoami", false), ("login", false), ("login", false), ("login", false), ("whoami", true)]);
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
    let (r, data) = answer_and_data(&mut c, "1").await;
    let token = r["result"]["token"].as_str().expect("logged in").to_owned();
    assert_eq!(data[0]["fields"], json!({"username": "bob", "profile": {"name": "Bob"}}));
    call(&mut c, "2", "createUser", json!([{"username": "BOB", "password": password("pw")}])).await;
    assert_eq!(answer(&mut c, "2").await["error"]["reason"], "Username already exists.");
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
