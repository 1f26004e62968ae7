//! `ddp-test-server [--host H] [--port P] [--serve PREFIX=DIR]... [--heartbeat INTERVAL_MS,TIMEOUT_MS] [--versions V,V]`
//!
//! Environment: `HTTP_FORWARDED_COUNT` (proxies in front, as in Meteor).

use ddp_test_server::{Config, Server};
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: ddp-test-server [--host 127.0.0.1] [--port 3300] [--serve PREFIX=DIR]... \
         [--heartbeat INTERVAL_MS,TIMEOUT_MS] [--versions 1,pre2,pre1]"
    );
    std::process::exit(2)
}

fn main() {
    let mut config = Config::default();
    let mut host = "127.0.0.1".to_string();
    let mut port: u16 = 3300;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--host" => host = value(),
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--serve" => {
                let v = value();
                let Some((prefix, dir)) = v.split_once('=') else { usage() };
                config.mounts.push((prefix.to_owned(), dir.into()));
            }
            "--heartbeat" => {
                let v = value();
                let parts: Vec<u64> = v.split(',').map(|p| p.parse().unwrap_or_else(|_| usage())).collect();
                let [interval, timeout] = parts[..] else { usage() };
                config.heartbeat_interval = Duration::from_millis(interval);
                config.heartbeat_timeout = Duration::from_millis(timeout);
            }
            "--versions" => config.versions = value().split(',').map(str::to_owned).collect(),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if let Ok(n) = std::env::var("HTTP_FORWARDED_COUNT") {
        config.forwarded_count = n.trim().parse().unwrap_or(0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ddp-test-server: cannot listen on {host}:{port}: {e}");
                std::process::exit(1);
            }
        };
        println!("ddp-test-server listening on http://{host}:{port}/ (DDP at ws://{host}:{port}/websocket)");
        let server = Server::new(config);
        tokio::select! {
            r = server.serve(listener) => if let Err(e) = r { eprintln!("ddp-test-server: {e}"); std::process::exit(1) },
            _ = tokio::signal::ctrl_c() => {}
        }
    });
}
