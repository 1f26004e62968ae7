//! `ddp`: a small DDP command line client on the native host (tokio).
//!
//! ```text
//! cargo run --features native --example ddp -- URL [options]
//!   --login USER PASSWORD   log in (Meteor's accounts-password)
//!   --sub NAME [ARGS]       subscribe (ARGS: a JSON array)
//!   --watch COLLECTION      print the collection's live changes (default:
//!                           the collections named as the subscriptions)
//!   --call NAME [ARGS]      call a method (ARGS: a JSON array) and print its result
//!   --once                  exit once every call returned and every subscription is ready
//! ```
//!
//! Against the test server: `cargo run --features native --example ddp --
//! ws://127.0.0.1:3300/websocket --sub items '[3]' --call add '[2,3]' --once`;
//! against Meteor, the same with its URL.

use ddp_live::{connect, Change, Options};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Default)]
struct Args {
    url: String,
    login: Option<(String, String)>,
    subs: Vec<(String, Value)>,
    calls: Vec<(String, Value)>,
    watch: Vec<String>,
    once: bool,
}

fn json_args(text: Option<&String>) -> Result<Value, String> {
    match text {
        None => Ok(Value::Array(Vec::new())),
        #[allow(clippy::disallowed_methods, reason = "app code: the library's size rules are the library's")]
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(v @ Value::Array(_)) => Ok(v),
            Ok(_) => Err(format!("{t}: arguments are a JSON array")),
            Err(e) => Err(format!("{t}: {e}")),
        },
    }
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        url: argv.next().ok_or("usage: ddp URL [--login USER PASSWORD] [--sub NAME [ARGS]] [--call NAME [ARGS]] [--once]")?,
        ..Args::default()
    };
    let argv: Vec<String> = argv.collect();
    let mut i = 0;
    // The optional JSON argument list after a name.
    let list = |i: &mut usize| -> Result<Value, String> {
        let next = argv.get(*i + 1).filter(|a| a.starts_with('['));
        *i += usize::from(next.is_some());
        json_args(next)
    };
    while i < argv.len() {
        match argv[i].as_str() {
            "--login" => {
                let (u, p) = (argv.get(i + 1), argv.get(i + 2));
                args.login = Some((u.ok_or("--login USER PASSWORD")?.clone(), p.ok_or("--login USER PASSWORD")?.clone()));
                i += 2;
            }
            "--sub" => {
                let name = argv.get(i + 1).ok_or("--sub NAME")?.clone();
                i += 1;
                args.subs.push((name, list(&mut i)?));
            }
            "--call" => {
                let name = argv.get(i + 1).ok_or("--call NAME")?.clone();
                i += 1;
                args.calls.push((name, list(&mut i)?));
            }
            "--watch" => {
                args.watch.push(argv.get(i + 1).ok_or("--watch COLLECTION")?.clone());
                i += 1;
            }
            "--once" => args.once = true,
            other => return Err(format!("unknown option {other}")),
        }
        i += 1;
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), String> {
    let conn = connect(&args.url, Options::default()).map_err(|e| e.to_string())?;
    let _status = conn.on_status_change(|s| eprintln!("status: {}", s.status));
    if let Some((user, password)) = &args.login {
        let id = conn.accounts().login_with_password(user.as_str(), password).await.map_err(|e| format!("login: {e}"))?;
        println!("logged in as {id}");
    }
    let watch = if args.watch.is_empty() { args.subs.iter().map(|(n, _)| n.clone()).collect() } else { args.watch.clone() };
    let _watches: Vec<_> = watch
        .iter()
        .map(|name| {
            conn.collection(name).on_change(|change| match change {
                Change::Added { collection, id, .. } => println!("added {collection} {id}"),
                Change::Changed { collection, id, fields, cleared } => {
                    println!("changed {collection} {id} {} cleared {cleared:?}", Value::Object(fields.clone()))
                }
                Change::Removed { collection, id } => println!("removed {collection} {id}"),
            })
        })
        .collect();
    let subs: Vec<_> = args.subs.iter().map(|(name, params)| (name, conn.subscribe(name, params.clone()))).collect();
    for (name, params) in &args.calls {
        let params = params.as_array().cloned().unwrap_or_default();
        match conn.call::<Value>(name, params).await {
            Ok(v) => println!("{name} → {v}"),
            Err(e) => println!("{name} failed: {e}"),
        }
    }
    for (name, sub) in &subs {
        match sub.wait_ready().await {
            Ok(()) => println!("{name} ready"),
            Err(e) => return Err(format!("subscription {name}: {e:?}")),
        }
    }
    if args.once {
        conn.close();
        return Ok(());
    }
    std::future::pending::<()>().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match tokio::task::LocalSet::new().block_on(&runtime, run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
