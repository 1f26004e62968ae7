//! Waves of connections against the test server, to tell a leak from the
//! allocator keeping freed memory: after each wave (every client gone,
//! every session ended) it prints the process's resident memory, the bytes
//! still allocated (counted by a wrapper around the system allocator), and
//! the resident memory after glibc's `malloc_trim(0)` hands free pages back.
//!
//! `cargo run --release -p ddp-test-server --example waves [WAVES] [CLIENTS]`
//! (default 3 waves of 2,000). Everything stays on 127.0.0.1, in this one
//! process (the clients' memory is freed with them before each reading).

use ddp_test_server::{Config, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method hands its arguments unchanged to the same method of
// `System` (itself a correct `GlobalAlloc`) and returns what it returned, so
// `Counting` keeps every promise of `GlobalAlloc` that `System` keeps. The
// counting around the calls only touches an atomic: it never allocates
// (which would recurse into this allocator) and never unwinds.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `alloc`'s contract (`layout` has a
        // non-zero size), which is all `System.alloc` asks.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`: the caller's `layout` has a non-zero size.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller promises `ptr` came from this allocator with
        // `layout`; every block this allocator hands out is `System`'s, with
        // the same layout, so `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`, `ptr` is `System`'s block of `layout`; the
        // caller's `new_size` is non-zero and does not overflow when rounded
        // up to `layout.align()`, as `System.realloc` asks.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn live_mb() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / 1e6
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only hands free pages at the
    // top of glibc's heaps back to the system; glibc's allocator locks its
    // arenas, so calling it while other threads allocate is sound.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One client: handshake, a subscription (20 documents of 200 bytes), a
/// call; then it waits for `go` and leaves — half with `disconnect`, half
/// just dropping the socket.
async fn client(addr: std::net::SocketAddr, i: usize, go: tokio::sync::watch::Receiver<bool>) {
    let Ok((mut c, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/t/waves/websocket")).await else {
        eprintln!("client {i}: cannot connect");
        return;
    };
    let frames = [
        json!({"msg":"connect","version":"1","support":["1"]}),
        json!({"msg":"sub","id":"s","name":"items","params":[20, 200]}),
        json!({"msg":"method","id":"1","method":"inc","params":["waves"]}),
    ];
    for f in frames {
        let _ = c.send(Message::Text(f.to_string().into())).await;
    }
    while let Some(Ok(m)) = c.next().await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
            if v["msg"] == "updated" {
                break;
            }
        }
    }
    let mut go = go;
    let _ = go.wait_for(|g| *g).await;
    if i.is_multiple_of(2) {
        let _ = c.send(Message::Text(json!({"msg":"disconnect"}).to_string().into())).await;
    }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let waves = args.next().unwrap_or(3);
    let clients = args.next().unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let grace = Duration::from_millis(500);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        let server = Server::new(Config { grace, ..Config::default() });
        tokio::spawn(server.clone().serve(listener));
        println!("start: RSS {:.1} MB, allocated {:.1} MB", rss_mb(), live_mb());
        for wave in 1..=waves {
            let t = Instant::now();
            let (go_tx, go_rx) = tokio::sync::watch::channel(false);
            let tasks: Vec<_> = (0..clients).map(|i| tokio::spawn(client(addr, i, go_rx.clone()))).collect();
            while server.connection_count("waves") < clients && t.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let peak = (rss_mb(), live_mb());
            go_tx.send_replace(true);
            for task in tasks {
                let _ = task.await;
            }
            while server.connection_count("waves") > 0 && t.elapsed() < Duration::from_secs(120) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The dropped half is held for the grace period, then ends.
            tokio::time::sleep(grace + Duration::from_millis(500)).await;
            let (rss, live) = (rss_mb(), live_mb());
            trim();
            println!(
                "wave {wave}: {clients} clients in {:.1} s; all connected: RSS {:.1} MB, allocated {:.1} MB; \
                 all gone: RSS {rss:.1} MB, allocated {live:.1} MB; after malloc_trim: RSS {:.1} MB",
                t.elapsed().as_secs_f64(),
                peak.0,
                peak.1,
                rss_mb()
            );
        }
    });
}
