//! Helpers shared by the test server's tests: a server on a free port, a
//! raw WebSocket client, the control endpoint.
#![allow(dead_code)]

use ddp_test_server::{Config, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Settings with a fast heartbeat: `ms` interval and timeout.
pub fn heartbeat(ms: u64) -> Config {
    Config { heartbeat_interval: Duration::from_millis(ms), heartbeat_timeout: Duration::from_millis(ms), ..Config::default() }
}

pub async fn start(config: Config) -> (Server, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(config);
    tokio::spawn(server.clone().serve(listener));
    (server, addr)
}

pub async fn ws(addr: SocketAddr, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.unwrap().0
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time").unwrap().unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

pub async fn handshake(ws: &mut Ws) -> String {
    send(ws, json!({"msg":"connect","version":"1","support":["1","pre2","pre1"]})).await;
    let r = recv(ws).await;
    assert_eq!(r["msg"], "connected");
    r["session"].as_str().unwrap().to_owned()
}

pub async fn control(addr: SocketAddr, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(json).unwrap()
}

pub async fn call(c: &mut Ws, id: &str, method: &str, params: Value) {
    send(c, json!({"msg":"method","id":id,"method":method,"params":params})).await;
}

/// Reads until both the result and updated of `id` arrived; returns the result message.
pub async fn answer(c: &mut Ws, id: &str) -> Value {
    let (mut result, mut updated) = (None, false);
    while result.is_none() || !updated {
        let m = recv(c).await;
        if m["msg"] == "result" && m["id"] == id {
            result = Some(m);
        } else if m["msg"] == "updated" && m["methods"].as_array().unwrap().iter().any(|x| x == id) {
            updated = true;
        }
    }
    result.unwrap()
}

/// Reads until the socket ends; returns the close frame's code and reason,
/// if the server sent one.
pub async fn close_frame(c: &mut Ws) -> Option<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match c.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| (u16::from(f.code), f.reason.to_string())),
                None | Some(Err(_)) => return None,
                _ => {}
            }
        }
    })
    .await
    .expect("the socket ended in time")
}
