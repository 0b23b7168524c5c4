//! `tapedeck live` as a real process over real sockets: strategies swapped, shadowed,
//! promoted and rolled back while quotes stream in, every event decided on exactly once (the
//! session replays as a backtest, order for order), traps rolled back, the control API
//! closed to callers without the token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tapedeck::store::{SeqRange, StoreUri};
use tapedeck_test_guests as guests;

use super::{Proc, tmp};

const TOKEN: &str = "test-token-0123456789abcdef";
const STREAM: &str = "md:sim:BTCUSDT";

/// A running `tapedeck live` (killed when dropped).
struct Live {
    proc: Option<Proc>,
    dir: PathBuf,
    tcp: SocketAddr,
    control: SocketAddr,
}

impl Live {
    fn start(dir: &Path, strategy: &str, config: &str) -> Live {
        Self::start_with(dir, strategy, config, "", "")
    }

    /// With `control` TOML added to `[control]` and `extra` TOML appended.
    fn start_with(dir: &Path, strategy: &str, config: &str, control: &str, extra: &str) -> Live {
        std::fs::create_dir_all(dir).unwrap();
        let toml = format!(
            r#"
[live]
session = "t"
strategy = "{strategy}"
config = '{config}'
batch = 256
[control]
listen = "127.0.0.1:0"
token = "{TOKEN}"
{control}
[wal]
dir = "{wal}"
[inputs]
tcp = "127.0.0.1:0"
[[sinks]]
store = "{store}"
flush_ms = 20
{extra}
"#,
            wal = dir.join("wal").display(),
            store = dir.join("store").display(),
        );
        let cfg = dir.join("live.toml");
        std::fs::write(&cfg, toml).unwrap();
        // live: control http://127.0.0.1:Q, recording tcp 127.0.0.1:P
        let proc = Proc::start(&["live", "--config", cfg.to_str().unwrap()]);
        let scheme = if control.is_empty() { "http" } else { "https" };
        let (tcp, control) = (
            proc.addr("recording tcp "),
            proc.addr(&format!("control {scheme}://")),
        );
        Live {
            proc: Some(proc),
            dir: dir.to_path_buf(),
            tcp,
            control,
        }
    }

    /// `tapedeck ctl ARGS` against this session: (success, stdout).
    fn ctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
            .arg("ctl")
            .args(args)
            .env("TAPEDECK_TOKEN", TOKEN)
            .env("TAPEDECK_CONTROL", format!("http://{}", self.control))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> Value {
        let (ok, out) = self.ctl(args);
        assert!(ok, "tapedeck ctl {args:?}: {out}");
        serde_json::from_str(&out).unwrap_or(Value::Null)
    }

    fn status(&self) -> Value {
        self.ok(&["status"])
    }

    /// Waits until the engine has applied `seq` on the test stream.
    fn wait_applied(&self, seq: u64) -> Value {
        let t = Instant::now();
        loop {
            let s = self.status();
            if s["streams"][STREAM]["applied_seq"].as_u64() == Some(seq) {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "not applied up to {seq}: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(&mut self) {
        self.proc.take().expect("running").stop();
    }

    fn store(&self) -> String {
        self.dir.join("store").display().to_string()
    }
}

/// Quote `i` of a mid that swings ±50 around 60,000 (an EMA cross trades on every swing).
fn quote(i: u64) -> String {
    let mid = 60_000.0 + 50.0 * (i as f64 / 40.0).sin();
    format!(
        r#"{{"stream_key":"{STREAM}","occurred_at":{},"instrument":"BTCUSDT","event_type":"quote","payload":{{"bid_px":"{:.2}","bid_qty":"1.5","ask_px":"{:.2}","ask_qty":"2.0"}}}}"#,
        1_700_000_000_000_000_000i64 + i as i64 * 1_000_000,
        mid - 0.5,
        mid + 0.5
    )
}

/// Sends quotes `from..to` over one connection as fast as they are taken; returns the acks.
fn send(addr: SocketAddr, from: u64, to: u64) -> u64 {
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let ids: Vec<u64> = (from..to).collect();
        for chunk in ids.chunks(200) {
            buf.clear();
            for i in chunk {
                buf.extend_from_slice(quote(*i).as_bytes());
                buf.push(b'\n');
            }
            if w.write_all(&buf).is_err() {
                // The session went away (a test killed it).
                return;
            }
        }
    });
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut acks = 0;
    for _ in from..to {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || !line.ends_with('\n') {
            break;
        }
        assert!(line.starts_with("{\"ack\""), "not an ack: {line}");
        acks += 1;
    }
    let _ = writer.join();
    acks
}

/// One HTTP/1.1 request with an optional bearer token; (status, body).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

/// The audit events of the session: (type, data).
fn audit(store: &str) -> Vec<(String, Value)> {
    let s = store.parse::<StoreUri>().unwrap().open().unwrap();
    let mut out = Vec::new();
    s.read("live:t", SeqRange::ALL, &mut |e| {
        if let tapedeck::event::Body::Custom { type_name, data } = e.body {
            out.push((type_name, data));
        }
        Ok(())
    })
    .unwrap();
    out
}

/// `tapedeck replay --timeline live:t`: (success, stdout).
fn replay_session(l: &Live) -> (bool, String) {
    let out = super::tapedeck(&[
        "replay",
        "--store",
        &l.store(),
        "--timeline",
        "live:t",
        "--modules",
        l.dir.join("live-modules").to_str().unwrap(),
    ]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn swaps_shadow_promote_and_rollback_under_load_replay_as_a_backtest_order_for_order() {
    let dir = tmp("swaps");
    let mut l = Live::start(&dir, guests::EMA_CROSS, "");
    let (_, v1) = l.ctl(&["upload", guests::EMA_CROSS]);
    let (_, v2) = l.ctl(&["upload", guests::EMA_CROSS_V2]);
    let (v1, v2) = (v1.trim().to_string(), v2.trim().to_string());
    assert_eq!(v1.len(), 64);

    // Quotes stream in on one connection while the control API swaps modules back and forth.
    const N: u64 = 30_000;
    let tcp = l.tcp;
    let sender = std::thread::spawn(move || send(tcp, 0, N));
    let mut swaps = 0;
    let mut handoffs = std::collections::BTreeSet::new();
    while !sender.is_finished() && swaps < 20 {
        let to = if swaps % 2 == 0 { &v2 } else { &v1 };
        let r = l.ok(&["swap", to]);
        if let Some(h) = r["streams"][STREAM]["handoff"]["how"].as_str() {
            handoffs.insert(h.to_string());
        }
        swaps += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(sender.join().unwrap(), N, "every quote acknowledged");
    assert!(
        swaps >= 4,
        "only {swaps} swaps happened while quotes streamed"
    );
    // v1 -> v2 hands the snapshot over; v2's snapshot is refused by v1, which restores its own
    // state from when it left and catches up since.
    assert!(handoffs.contains("snapshot"), "{handoffs:?}");
    assert!(handoffs.contains("saved"), "{handoffs:?}");

    // A shadow with another config, compared and never executed; promoted; rolled back.
    l.ok(&["swap", &v1]);
    let orders_before = l.wait_applied(N)["streams"][STREAM]["orders"]
        .as_u64()
        .unwrap();
    l.ok(&["shadow", &v2, "--config", r#"{"band_bps":1.0}"#]);
    assert_eq!(send(l.tcp, N, N + 4000), 4000);
    let s = l.wait_applied(N + 4000);
    let shadow = &s["streams"][STREAM]["shadow"];
    assert_eq!(shadow["module"], v2.as_str());
    assert!(
        shadow["divergence"]["compared_batches"].as_u64().unwrap() > 0,
        "{s:#}"
    );
    assert!(
        shadow["divergence"]["divergent_batches"].as_u64().unwrap() > 0,
        "{s:#}"
    );
    let first = &shadow["divergence"]["first"];
    assert!(first["seq"].as_u64().unwrap() > N, "{first}");
    assert_eq!(
        first["active"]["output"]["instrument"], "BTCUSDT",
        "named by symbol"
    );
    let promoted = l.ok(&["promote"]);
    assert_eq!(promoted["to"], v2.as_str());
    assert_eq!(send(l.tcp, N + 4000, N + 6000), 2000);
    let back = l.ok(&["rollback"]);
    assert_eq!(back["to"], v1.as_str());
    assert_eq!(send(l.tcp, N + 6000, N + 8000), 2000);
    let s = l.wait_applied(N + 8000);
    let st = &s["streams"][STREAM];
    assert_eq!(
        st["events"].as_u64(),
        Some(N + 8000),
        "every event applied once: {s:#}"
    );
    assert!(st["orders"].as_u64().unwrap() > orders_before);
    assert_eq!(s["active"]["sha256"], v1.as_str());
    assert_eq!(s["rollbacks"].as_u64(), Some(1));
    assert!(s["swap_pause"]["p99_us"].as_u64().is_some(), "{s:#}");
    let metrics = l.ctl(&["metrics"]).1;
    assert!(metrics.contains("tapedeck_live_swaps_total"), "{metrics}");
    let batches: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tapedeck_live_batches_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(metrics.contains("tapedeck_recorder_"), "{metrics}");
    let orders = st["orders"].as_u64().unwrap();
    let fills = st["fills"].as_u64().unwrap();
    l.stop();

    // The session is a recorded history: its orders, acks and fills in the exec stream...
    let store = l.store().parse::<StoreUri>().unwrap().open().unwrap();
    let exec = store
        .streams()
        .unwrap()
        .into_iter()
        .find(|s| s.key == "exec:paper:BTCUSDT")
        .expect("the exec stream");
    assert_eq!(exec.counts.get("order_submitted"), Some(&orders));
    assert_eq!(exec.counts.get("order_acked"), Some(&orders));
    assert_eq!(exec.counts.get("fill"), Some(&fills));
    // ...its control actions in the audit stream...
    let kinds: Vec<String> = audit(&l.store()).into_iter().map(|a| a.0).collect();
    for k in [
        "live_started",
        "live_stream",
        "live_swap",
        "live_shadow",
        "live_promote",
        "live_rollback",
        "live_module_uploaded",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
    }
    assert_eq!(
        kinds.iter().filter(|k| *k == "live_swap").count(),
        swaps + 1
    );
    // Where every batch ended, for the replay to cut its batches there.
    let ends: usize = audit(&l.store())
        .iter()
        .filter(|a| a.0 == "live_batches")
        .map(|a| a.1["ends"].as_array().unwrap().len())
        .sum();
    assert_eq!(ends as u64, batches);
    // ...and replaying it along its timeline reproduces every order and cancel.
    let (ok, out) = replay_session(&l);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{STREAM}: {} events", N + 8000)) && out.contains("reproduced"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_that_panics_live_is_rolled_back_and_the_strategy_goes_on() {
    let dir = tmp("panic");
    let mut l = Live::start(&dir, guests::EMA_CROSS, "");
    assert_eq!(send(l.tcp, 0, 2000), 2000);
    let v1 = l.wait_applied(2000)["active"]["sha256"].clone();
    // The misbehaving module panics at seq 2600, in the middle of a batch.
    let (_, bad) = l.ctl(&["upload", guests::MISBEHAVE]);
    let bad = bad.trim().to_string();
    l.ok(&[
        "swap",
        &bad,
        "--config",
        r#"{"mode":"panic","at_seq":2600}"#,
    ]);
    assert_eq!(send(l.tcp, 2000, 5000), 3000);
    let s = l.wait_applied(5000);
    let st = &s["streams"][STREAM];
    assert_eq!(st["module"], v1, "rolled back: {s:#}");
    let finding = &st["findings"][0];
    assert_eq!(finding["kind"], "guest_trap");
    assert!(
        finding["first_seq"].as_u64().unwrap() <= 2600
            && finding["last_seq"].as_u64().unwrap() >= 2600,
        "{finding}"
    );
    assert!(
        finding["message"].as_str().unwrap().contains("panic"),
        "{finding}"
    );
    assert_eq!(s["rollbacks"].as_u64(), Some(1));
    l.stop();

    // Orders went on after the trap, decided by the module rolled back to.
    let store = l.store().parse::<StoreUri>().unwrap().open().unwrap();
    let mut after = 0;
    store
        .read("exec:paper:BTCUSDT", SeqRange::ALL, &mut |e| {
            let cause: u64 = e
                .correlation
                .causation_id
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            if cause > 2600 && matches!(e.body, tapedeck::event::Body::OrderSubmitted { .. }) {
                after += 1;
            }
            Ok(())
        })
        .unwrap();
    assert!(after > 0, "no orders after the trap");
    let rollback = audit(&l.store())
        .into_iter()
        .find(|a| a.0 == "live_rollback")
        .expect("the rollback is recorded");
    assert_eq!(rollback.1["automatic"], true);
    assert_eq!(rollback.1["finding"]["kind"], "guest_trap");
    let (ok, out) = replay_session(&l);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn control_calls_without_the_token_or_with_a_wrong_pin_are_refused_and_audited() {
    let dir = tmp("auth");
    let mut l = Live::start(&dir, guests::EMA_CROSS, "");
    let (status, body) = call(l.control, "GET", "/status", None, b"");
    assert_eq!(status, 401, "{body}");
    let (status, _) = call(
        l.control,
        "POST",
        "/rollback",
        Some("not-the-token-at-all"),
        b"",
    );
    assert_eq!(status, 401);
    let (status, _) = call(l.control, "GET", "/status", Some(TOKEN), b"");
    assert_eq!(status, 200);
    let (ok, out) = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .args(["ctl", "status"])
        .env("TAPEDECK_TOKEN", "wrong-token-wrong-token")
        .env("TAPEDECK_CONTROL", format!("http://{}", l.control))
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(!ok && out.contains("401"), "{out}");

    // A module whose bytes do not match its pin is refused.
    let wasm = std::fs::read(guests::EMA_CROSS_V2).unwrap();
    let wrong = "0".repeat(64);
    let (status, body) = call(
        l.control,
        "POST",
        &format!("/modules?sha256={wrong}"),
        Some(TOKEN),
        &wasm,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sha256 mismatch"), "{body}");
    // Swapping to a module never uploaded says how to upload it.
    let (status, body) = call(
        l.control,
        "POST",
        "/swap",
        Some(TOKEN),
        format!(r#"{{"sha256":"{wrong}"}}"#).as_bytes(),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("upload it first"), "{body}");
    // A config the module refuses never reaches the event path.
    let (_, v2) = l.ctl(&["upload", guests::EMA_CROSS_V2]);
    let (ok, body) = l.ctl(&["swap", v2.trim(), "--config", r#"{"band_bps":-1}"#]);
    assert!(!ok && body.contains("refuses its config"), "{body}");
    let metrics = l.ctl(&["metrics"]).1;
    assert!(
        metrics.contains("tapedeck_live_control_refused_total 4"),
        "{metrics}"
    );
    l.stop();

    let refused: Vec<Value> = audit(&l.store())
        .into_iter()
        .filter(|a| a.0 == "live_control_refused")
        .map(|a| a.1)
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|r| r["reason"] == "no bearer token" && r["path"] == "/status")
    );
    assert!(
        refused
            .iter()
            .any(|r| r["reason"] == "wrong token" && r["path"] == "/rollback")
    );
    assert!(
        refused
            .iter()
            .any(|r| r["reason"].as_str().unwrap().contains("sha256 mismatch"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_killed_under_load_resumes_with_its_module_and_sends_no_order_twice() {
    let dir = tmp("kill");
    let mut l = Live::start(&dir, guests::EMA_CROSS, "");
    assert_eq!(send(l.tcp, 0, 6000), 6000);
    let (_, v2) = l.ctl(&["upload", guests::EMA_CROSS_V2]);
    let v2 = v2.trim().to_string();
    l.ok(&["swap", &v2]);
    // Killed while quotes stream in: what was acknowledged is durable, some of it not yet
    // decided on.
    let tcp = l.tcp;
    let sender = std::thread::spawn(move || send(tcp, 6000, 40_000));
    std::thread::sleep(Duration::from_millis(300));
    l.proc.take().unwrap().sigkill();
    let acked = sender.join().unwrap();
    assert!(
        acked > 0 && acked < 34_000,
        "{acked} acknowledged before the kill"
    );

    let mut l = Live::start(&dir, guests::EMA_CROSS, "");
    assert_eq!(send(l.tcp, 100_000, 103_000), 3000);
    // Everything recorded gets decided on: wait until the engine stops moving.
    let mut last = (0, Instant::now());
    let s = loop {
        let s = l.status();
        let applied = s["streams"][STREAM]["applied_seq"].as_u64().unwrap_or(0);
        if applied != last.0 {
            last = (applied, Instant::now());
        } else if applied >= 6000 + acked + 3000 && last.1.elapsed() > Duration::from_millis(500) {
            break s;
        }
        assert!(last.1.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    };
    // Resumed with the module active before the kill.
    assert_eq!(s["active"]["sha256"], v2.as_str(), "{s:#}");
    assert_eq!(s["streams"][STREAM]["module"], v2.as_str());
    l.stop();

    let store = l.store().parse::<StoreUri>().unwrap().open().unwrap();
    let md = store
        .streams()
        .unwrap()
        .into_iter()
        .find(|s| s.key == STREAM)
        .unwrap();
    assert!(md.last_seq >= 6000 + acked + 3000);
    assert_eq!(
        s["streams"][STREAM]["applied_seq"].as_u64(),
        Some(md.last_seq)
    );
    // No order twice: one order_submitted per order id.
    let mut ids = std::collections::BTreeMap::new();
    store
        .read("exec:paper:BTCUSDT", SeqRange::ALL, &mut |e| {
            if matches!(e.body, tapedeck::event::Body::OrderSubmitted { .. }) {
                *ids.entry(e.correlation.command_id.unwrap()).or_insert(0) += 1;
            }
            Ok(())
        })
        .unwrap();
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let kinds: Vec<String> = audit(&l.store()).into_iter().map(|a| a.0).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "live_started").count(), 2);
    // The session, restart included, replays order for order.
    let (ok, out) = replay_session(&l);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An executor: answers the first POST with 503, then takes every NDJSON body; the lines it
/// took.
fn executor() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut c) = conn else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            // Taken before the answer says so.
            if n > 0 {
                for l in String::from_utf8(body).unwrap().lines() {
                    tx.send(l.to_string()).unwrap();
                }
            }
            let status = if n == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
        }
    });
    (addr, rx)
}

#[test]
fn orders_go_to_an_executor_behind_the_order_sink_once_each_and_are_recorded() {
    let dir = tmp("sink");
    let (exec, lines) = executor();
    let extra = format!("[order_sink]\nurl = \"http://{exec}/orders\"\n");
    let mut l = Live::start_with(&dir, guests::EMA_CROSS, "", "", &extra);
    assert_eq!(send(l.tcp, 0, 5000), 5000);
    let s = l.wait_applied(5000);
    let orders = s["streams"][STREAM]["orders"].as_u64().unwrap();
    assert!(orders > 10, "{s:#}");
    l.stop();
    let got: Vec<Value> = lines
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    // Every order reached the executor once, after the first answer (503) was retried.
    assert_eq!(got.len() as u64, orders);
    let ids: std::collections::BTreeSet<&str> = got
        .iter()
        .map(|v| v["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), got.len());
    assert!(
        got.iter()
            .all(|v| v["event_type"] == "order_submitted" && v["symbol"] == "BTCUSDT")
    );
    // The session records what it decided; acks and fills are the executor's to record.
    let store = l.store().parse::<StoreUri>().unwrap().open().unwrap();
    let exec = store
        .streams()
        .unwrap()
        .into_iter()
        .find(|s| s.key == "exec:paper:BTCUSDT")
        .expect("the exec stream");
    assert_eq!(exec.counts.get("order_submitted"), Some(&orders));
    assert_eq!(exec.counts.get("order_acked"), None);
    assert_eq!(exec.counts.get("fill"), None);
    let mut recorded = std::collections::BTreeSet::new();
    store
        .read("exec:paper:BTCUSDT", SeqRange::ALL, &mut |e| {
            recorded.insert(e.correlation.command_id.unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(
        recorded
            .iter()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ids
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_control_api_speaks_tls_when_given_a_certificate() {
    let dir = tmp("tls");
    super::local_ca(&dir);
    let control = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        dir.join("leaf.pem").display(),
        dir.join("leaf.key").display()
    );
    let mut l = Live::start_with(&dir, guests::EMA_CROSS, "", &control, "");
    let ctl = |ca: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tapedeck"));
        c.arg("ctl");
        if let Some(ca) = ca {
            c.args(["--ca-file", ca.to_str().unwrap()]);
        }
        let out = c
            .arg("status")
            .env("TAPEDECK_TOKEN", TOKEN)
            .env("TAPEDECK_CONTROL", format!("https://{}", l.control))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = ctl(None);
    assert!(!ok && out.contains("UnknownIssuer"), "{out}");
    let (ok, out) = ctl(Some(&dir.join("ca.pem")));
    assert!(ok && out.contains("\"session\": \"t\""), "{out}");
    l.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_stops_on_sigterm_while_quotes_still_arrive() {
    let dir = tmp("sigterm");
    let mut l = Live::start(&dir, guests::EMA_CROSS, "");
    let tcp = l.tcp;
    let sender = std::thread::spawn(move || send(tcp, 0, 1_000_000));
    std::thread::sleep(Duration::from_millis(500));
    let proc = l.proc.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(proc.term()).unwrap());
    let status = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tapedeck live did not stop within 30 s of SIGTERM while input kept arriving");
    assert!(status.success(), "{status}");
    let acked = sender.join().unwrap();
    assert!(acked > 0 && acked < 1_000_000, "{acked}");
    // What was acknowledged is stored.
    let store = l.store().parse::<StoreUri>().unwrap().open().unwrap();
    let md = store
        .streams()
        .unwrap()
        .into_iter()
        .find(|s| s.key == STREAM)
        .unwrap();
    assert!(md.last_seq >= acked);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reconciliation of a live paper session whose paper venue waited 5 ms with a replay that
/// waits 0: every fill pairs, and the fills' time difference is the paper venue's latency
/// (the quotes are 1 ms apart, so each paper fill comes five quotes after the simulated one).
#[test]
fn reconcile_finds_the_paper_venues_latency_in_a_live_session() {
    let dir = tmp("reconcile");
    let mut l = Live::start_with(
        &dir,
        guests::EMA_CROSS,
        "",
        "",
        "[venue]\nlatency_ms = 5.0\n",
    );
    const N: u64 = 3_000;
    assert_eq!(send(l.tcp, 0, N), N);
    l.wait_applied(N);
    l.stop();
    let out = dir.join("reconcile");
    let o = super::tapedeck(&[
        "reconcile",
        "--store",
        &l.store(),
        "--live",
        "exec:*",
        "--strategy",
        guests::EMA_CROSS,
        "--latency-us",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("reconcile.json")).unwrap()).unwrap();
    let trades = r["trades"].as_array().unwrap().len();
    assert!(trades >= 5, "{trades} paired trades");
    assert_eq!(r["pnl_gap"]["live_only_orders"], 0, "{}", r["pnl_gap"]);
    let d = &r["fill_time_diff_ns"];
    for q in ["p5", "p50", "p95"] {
        assert_eq!(d[q].as_f64().unwrap(), 5_000_000.0, "{d}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_paper_session_on_the_venue_model_reconciles_with_that_model_and_no_gap() {
    let dir = tmp("reconcile-model");
    std::fs::create_dir_all(&dir).unwrap();
    // Market orders on the venue model, a 5 ms order latency.
    let model = dir.join("venue.json");
    std::fs::write(
        &model,
        r#"{"order_latency": {"model": "constant", "ns": 5000000}, "queue": {"model": "risk_averse"}}"#,
    )
    .unwrap();
    let join = "";
    let venue = format!("[venue]\nmodel = \"{}\"\n", model.display());
    let mut l = Live::start_with(&dir, guests::EMA_CROSS, join, "", &venue);
    const N: u64 = 3_000;
    assert_eq!(send(l.tcp, 0, N), N);
    l.wait_applied(N);
    l.stop();
    let reconcile = |out: &str, venue: &[&str]| -> Value {
        let out = dir.join(out);
        let mut args = vec![
            "reconcile",
            "--store",
            &*l.store(),
            "--live",
            "exec:*",
            "--strategy",
            guests::EMA_CROSS,
            "--config",
            join,
            "--out",
            out.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(venue.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = super::tapedeck(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&std::fs::read(out.join("reconcile.json")).unwrap()).unwrap()
    };
    // Replayed through the model the session ran: every fill paired, at the same time and
    // price, and no gap.
    let r = reconcile("same", &["--venue", model.to_str().unwrap()]);
    let g = &r["pnl_gap"];
    let trades = r["trades"].as_array().unwrap();
    assert!(trades.len() >= 5, "{} paired trades", trades.len());
    assert_eq!(
        (
            g["live_only_orders"].as_u64(),
            g["sim_only_orders"].as_u64()
        ),
        (Some(0), Some(0)),
        "{g}"
    );
    assert!(
        trades
            .iter()
            .all(|t| t["time_diff_ns"] == 0 && t["price_diff"] == 0.0),
        "{r}"
    );
    assert!(g["total"].as_f64().unwrap().abs() < 1e-9, "{g}");
    // The paper venue acked each order when the model had it arrive.
    assert_eq!(r["order_latency_ns"]["p5"], 5_000_000.0, "{r}");
    assert_eq!(r["order_latency_ns"]["p95"], 5_000_000.0, "{r}");
    // The plain venue fills the same orders otherwise.
    let r = reconcile("plain", &[]);
    assert_ne!(
        r["pnl_gap"]["total"].as_f64().unwrap(),
        0.0,
        "{}",
        r["pnl_gap"]
    );
    // A tape latency cannot be fitted before the session: refused, naming the field.
    std::fs::write(&model, r#"{"order_latency": {"model": "tape"}}"#).unwrap();
    let o = super::tapedeck(&["live", "--config", dir.join("live.toml").to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("venue.model"));
    std::fs::remove_dir_all(&dir).unwrap();
}
