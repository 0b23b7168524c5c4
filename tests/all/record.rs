//! `tapedeck record` as a real process over real sockets: acknowledged means durable, a
//! SIGKILL under load loses and doubles nothing in any store, bad input is refused with a
//! reason and quarantined without disturbing other connections.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapedeck::store::{SeqRange, StoreUri};

use super::{Proc, tmp};

/// A running `tapedeck record` (killed when dropped).
struct Rec {
    proc: Proc,
    tcp: SocketAddr,
    http: SocketAddr,
}

impl Rec {
    fn start(args: &[&str]) -> Rec {
        let listen = ["record", "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"];
        let all: Vec<&str> = listen.iter().chain(args).copied().collect();
        // recording: tcp 127.0.0.1:P, http 127.0.0.1:Q
        let proc = Proc::start(&all);
        let (tcp, http) = (proc.addr("recording: tcp "), proc.addr("http "));
        Rec { proc, tcp, http }
    }

    fn sigkill(self) {
        self.proc.sigkill();
    }

    /// SIGTERM, and the exit status.
    fn stop(self) -> std::process::ExitStatus {
        self.proc.term()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(self.http, "GET", path, "")
    }
}

/// One HTTP/1.1 request; (status, body).
pub(super) fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

/// The i-th test event: an order ack on one of four exec streams, with an event id of its
/// own (so a resend is recognised).
fn event(i: u64) -> String {
    format!(
        r#"{{"event_id":"ev-{i:08}","stream_key":"exec:sim:S{}","occurred_at":{},"event_type":"order_acked","payload":{{"client_order_id":{i},"venue_order_id":{}}}}}"#,
        i % 4,
        1_704_153_600_000_000_000i64 + i as i64 * 1_000_000,
        i * 7
    )
}

/// Sends events `ids` over one connection as fast as the recorder takes them, collecting
/// every ack (event id → seq) into `acked` as it arrives; returns when all are answered or
/// the connection ends.
fn send(addr: SocketAddr, ids: Vec<u64>, acked: Arc<Mutex<BTreeMap<String, u64>>>) {
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let n = ids.len();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for chunk in ids.chunks(100) {
            buf.clear();
            for i in chunk {
                buf.extend_from_slice(event(*i).as_bytes());
                buf.push(b'\n');
            }
            if w.write_all(&buf).is_err() {
                return;
            }
        }
    });
    let mut r = BufReader::new(s);
    let mut line = String::new();
    for _ in 0..n {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = v["ack"]
            .as_str()
            .unwrap_or_else(|| panic!("not an ack: {line}"));
        acked
            .lock()
            .unwrap()
            .insert(id.to_string(), v["seq"].as_u64().unwrap());
    }
    let _ = writer.join();
}

/// Every event of every stream of `uri`: (event id, stream, seq), checking seqs are gapless.
fn stored(uri: &str) -> Vec<(String, String, u64)> {
    let store = uri.parse::<StoreUri>().unwrap().open().unwrap();
    let mut out = Vec::new();
    for s in store.streams().unwrap() {
        let mut next = 1;
        store
            .read(&s.key, SeqRange::ALL, &mut |e| {
                assert_eq!(e.seq, next, "{uri}: {} has a hole", s.key);
                next += 1;
                out.push((e.event_id, e.stream_key, e.seq));
                Ok(())
            })
            .unwrap();
    }
    out
}

pub(super) fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sinks(dir: &Path) -> Vec<String> {
    let mut v = vec![dir.join("store").display().to_string()];
    v.push(super::postgres::db("record_kill"));
    if let Some(ch) = super::clickhouse::server() {
        v.push(super::clickhouse::db(&ch, "record_kill"));
    }
    v
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_and_stores_each_event_once_in_every_sink() {
    const N: u64 = 20_000;
    let dir = tmp("sigkill");
    let sinks = sinks(&dir);
    let wal: PathBuf = dir.join("wal");
    let mut args = vec!["--wal".to_string(), wal.display().to_string()];
    for s in &sinks {
        args.extend(["--sink".to_string(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // First life: killed once a quarter of the events are acknowledged, mid-stream.
    let rec = Rec::start(&args);
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let sender = {
        let (addr, acked) = (rec.tcp, acked.clone());
        std::thread::spawn(move || send(addr, (0..N).collect(), acked))
    };
    wait_until("a quarter of the acks", Duration::from_secs(60), || {
        acked.lock().unwrap().len() as u64 >= N / 4
    });
    rec.sigkill();
    sender.join().unwrap();
    let before: BTreeMap<String, u64> = acked.lock().unwrap().clone();
    assert!(
        (before.len() as u64) < N,
        "the kill came after every ack: nothing was tested"
    );

    // Second life: the sender resends what was not acknowledged, and a thousand that were.
    let rec = Rec::start(&args);
    let unacked: Vec<u64> = (0..N)
        .filter(|i| !before.contains_key(&format!("ev-{i:08}")))
        .collect();
    let again: Vec<u64> = (0..N)
        .filter(|i| before.contains_key(&format!("ev-{i:08}")))
        .take(1000)
        .collect();
    let after = Arc::new(Mutex::new(BTreeMap::new()));
    send(
        rec.tcp,
        unacked.iter().chain(&again).copied().collect(),
        after.clone(),
    );
    let after = after.lock().unwrap().clone();
    assert_eq!(
        after.len(),
        unacked.len() + again.len(),
        "every resend answered"
    );
    for (id, seq) in &after {
        if let Some(first) = before.get(id) {
            assert_eq!(
                first, seq,
                "{id}: a resend got another seq than the first ack"
            );
        }
    }
    let mut all_acked = before.clone();
    all_acked.extend(after);
    assert_eq!(all_acked.len() as u64, N);

    // Every sink ends up with exactly the acknowledged events at the acknowledged seqs, soon:
    // a ClickHouse stream lock the killed recorder held is broken at once (its process is
    // gone), not after the 60 s lease.
    for uri in &sinks {
        wait_until(
            &format!("{uri} to hold every event"),
            Duration::from_secs(40),
            || stored(uri).len() as u64 >= N,
        );
        let got = stored(uri);
        assert_eq!(got.len() as u64, N, "{uri}: events stored");
        let ids: BTreeSet<&String> = got.iter().map(|g| &g.0).collect();
        assert_eq!(ids.len() as u64, N, "{uri}: an event stored twice");
        for (id, _, seq) in &got {
            assert_eq!(all_acked.get(id), Some(seq), "{uri}: {id}");
        }
    }
    let (status, metrics) = rec.get("/metrics");
    assert_eq!(status, 200);
    // The thousand acknowledged resends at least (events made durable but not yet
    // acknowledged when the kill came are recognised too).
    assert!(metric(&metrics, "tapedeck_recorder_deduplicated_events_total") >= 1000.0);
    assert!(rec.stop().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The value of an unlabelled metric.
pub(super) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Sends `lines` on a new connection and reads one reply per non-blank line.
fn exchange(addr: SocketAddr, lines: &[&[u8]]) -> Vec<serde_json::Value> {
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    for l in lines {
        w.write_all(l).unwrap();
        w.write_all(b"\n").unwrap();
    }
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    for _ in lines.iter().filter(|l| !l.trim_ascii().is_empty()) {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")));
    }
    out
}

#[test]
fn bad_input_on_every_ingress_is_refused_with_a_reason_and_quarantined() {
    let dir = tmp("bad");
    let wal = dir.join("wal");
    let store = dir.join("store");
    let unix = dir.join("rec.sock");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = Rec::start(&[
        "--wal",
        wal.to_str().unwrap(),
        "--sink",
        store.to_str().unwrap(),
        "--unix",
        unix.to_str().unwrap(),
    ]);
    // A slow sender (half a line, then nothing) does not hold anyone else up.
    let mut slow = TcpStream::connect(rec.tcp).unwrap();
    slow.write_all(br#"{"stream_key":"exec:sim:S0","#).unwrap();

    let long = vec![b'x'; 2 << 20];
    let good = event(1);
    let replies = exchange(
        rec.tcp,
        &[
            b"{not json",
            br#"{"stream_key":"s","occurred_at":1,"event_type":"warp","payload":{}}"#,
            br#"{"stream_key":"s","seq":3,"occurred_at":1,"event_type":"order_cancelled","payload":{"client_order_id":1}}"#,
            &long,
            b"",
            good.as_bytes(),
        ],
    );
    let errors: Vec<&str> = replies[..4]
        .iter()
        .map(|r| {
            r["error"]
                .as_str()
                .unwrap_or_else(|| panic!("not a nack: {r}"))
        })
        .collect();
    assert!(errors[0].contains("not an event envelope"), "{}", errors[0]);
    assert!(errors[1].contains("warp"), "{}", errors[1]);
    assert!(errors[2].contains("assigns seqs"), "{}", errors[2]);
    assert!(errors[3].contains("longer than the limit"), "{}", errors[3]);
    assert_eq!(replies[0]["nack"], 1);
    assert_eq!(replies[3]["nack"], 4);
    // The good line after them is recorded: the connection survived its bad lines.
    assert_eq!(
        replies[4],
        serde_json::json!({"ack": "ev-00000001", "seq": 1})
    );

    // The same over the Unix socket.
    let u = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    let mut uw = u.try_clone().unwrap();
    uw.write_all(b"[1,2]\n").unwrap();
    uw.write_all(event(5).as_bytes()).unwrap();
    uw.write_all(b"\n").unwrap();
    let mut ur = BufReader::new(u);
    let mut l = String::new();
    ur.read_line(&mut l).unwrap();
    assert!(l.contains("\"nack\":1"), "{l}");
    l.clear();
    ur.read_line(&mut l).unwrap();
    assert!(l.contains("\"seq\":2") && l.contains("ev-00000005"), "{l}");

    // HTTP: one event, a batch with a bad element, a body that is not JSON, a wrong path.
    let (st, body) = http(rec.http, "POST", "/events", &event(9));
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"seq\":3"), "{body}");
    let batch = format!("[{},{{\"stream_key\":\"x\"}},{}]", event(13), event(17));
    let (st, body) = http(rec.http, "POST", "/events", &batch);
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["seq"], 4);
    assert_eq!(v[1]["nack"], 2);
    assert_eq!(v[2]["seq"], 5);
    let (st, body) = http(rec.http, "POST", "/events", "garbage");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("not JSON"), "{body}");
    assert_eq!(http(rec.http, "GET", "/nope", "").0, 404);
    assert_eq!(http(rec.http, "GET", "/events", "").0, 405);

    // Every refusal is in the quarantine with its reason and where it came from.
    let q = std::fs::read_to_string(wal.join("quarantine/input.jsonl")).unwrap();
    let q: Vec<serde_json::Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(q.len(), 7, "{q:#?}");
    assert!(
        q[3]["origin"].as_str().unwrap().ends_with("line 4"),
        "{}",
        q[3]
    );
    assert_eq!(q[3]["bytes"], 2 << 20);
    let (_, metrics) = rec.get("/metrics");
    assert_eq!(
        metric(&metrics, "tapedeck_recorder_rejected_events_total"),
        7.0
    );
    let (st, health) = rec.get("/healthz");
    assert_eq!(st, 200);
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    // Stored: S1 holds events 1, 5, 9, 13 and 17 at seqs 1..5.
    wait_until(
        "the store to hold the five events",
        Duration::from_secs(30),
        || stored(store.to_str().unwrap()).len() == 5,
    );
    drop(slow);
    assert!(rec.stop().success());
    assert!(!unix.exists(), "the socket file is removed at a clean stop");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server of the test's own (never the shared one): `script` (`pg.sh`/`ch.sh`) with its
/// directory and ports in the environment.
struct OwnServer {
    script: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl OwnServer {
    fn new(script: &str, env: Vec<(&'static str, String)>) -> OwnServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scripts")
            .join(script);
        OwnServer { script, env }
    }

    fn run(&self, verb: &str) -> String {
        let out = Command::new(&self.script)
            .arg(verb)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {verb}: {}",
            self.script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output();
    }
}

/// The value of a labelled metric (`name{labels}`).
fn metric_at(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)?
                .strip_prefix(' ')?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
}

#[test]
fn database_outages_under_load_are_ridden_out_in_the_wal_and_everything_lands_once() {
    let dir = tmp("outage");
    std::fs::create_dir_all(&dir).unwrap();
    let ch = OwnServer::new(
        "ch.sh",
        vec![
            ("TAPEDECK_CH_DIR", dir.join("ch").display().to_string()),
            ("TAPEDECK_CH_HTTP_PORT", "18223".into()),
            ("TAPEDECK_CH_TCP_PORT", "19100".into()),
        ],
    );
    let pg = OwnServer::new(
        "pg.sh",
        vec![
            ("TAPEDECK_PG_DIR", dir.join("pg").display().to_string()),
            ("TAPEDECK_PG_PORT", "54429".into()),
        ],
    );
    let ch_db = super::clickhouse::db(&ch.run("start"), "record_outage");
    let pg_db =
        tapedeck::store::postgres::recreate_database(&pg.run("start"), "td_record_outage").unwrap();
    tapedeck::store::PgStore::migrate(&pg_db).unwrap();
    let store = dir.join("store").display().to_string();
    let wal = dir.join("wal").display().to_string();
    let rec = Rec::start(&[
        "--wal", &wal, "--sink", &ch_db, "--sink", &pg_db, "--sink", &store,
    ]);

    // A steady sender: 100 events every 50 ms, acks counted as they come.
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (addr, acked, stop) = (rec.tcp, acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ids: Vec<u64> = (next..next + 100).collect();
                next += 100;
                send(addr, ids, acked.clone());
                std::thread::sleep(Duration::from_millis(50));
            }
            next
        })
    };
    let acks = || acked.lock().unwrap().len();
    wait_until("the first acks", Duration::from_secs(30), || acks() >= 1000);

    // ClickHouse down for 60 s: acknowledgements go on, its backlog grows and shows.
    ch.run("stop");
    let at_stop = acks();
    std::thread::sleep(Duration::from_secs(60));
    let (_, m) = rec.get("/metrics");
    let ch_name = tapedeck::store::uri::redact(&ch_db);
    assert_eq!(
        metric_at(
            &m,
            &format!("tapedeck_recorder_sink_failing{{sink=\"{ch_name}\"}}")
        ),
        1.0,
        "{m}"
    );
    let queued = metric_at(
        &m,
        &format!("tapedeck_recorder_sink_queue_events{{sink=\"{ch_name}\",class=\"critical\"}}"),
    );
    assert!(queued > 1000.0, "ClickHouse's backlog is visible: {queued}");
    assert!(
        acks() > at_stop + 10_000,
        "acks went on while ClickHouse was down"
    );
    let (_, health) = rec.get("/healthz");
    assert!(health.contains("\"status\":\"degraded\""), "{health}");
    ch.run("start");

    // PostgreSQL restarted under load, likewise.
    pg.run("stop");
    std::thread::sleep(Duration::from_secs(5));
    pg.run("start");
    std::thread::sleep(Duration::from_secs(2));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len() as u64,
        sent,
        "every event sent was acknowledged"
    );
    for uri in [&ch_db, &pg_db, &store] {
        wait_until(
            &format!("{uri} to catch up"),
            Duration::from_secs(120),
            || stored(uri).len() as u64 >= sent,
        );
        let got = stored(uri);
        assert_eq!(got.len() as u64, sent, "{uri}");
        for (id, _, seq) in &got {
            assert_eq!(acked.get(id), Some(seq), "{uri}: {id}");
        }
    }
    let (_, m) = rec.get("/metrics");
    assert_eq!(
        metric_at(
            &m,
            &format!("tapedeck_recorder_sink_failing{{sink=\"{ch_name}\"}}")
        ),
        0.0
    );
    assert!(
        metric_at(
            &m,
            &format!("tapedeck_recorder_sink_retries_total{{sink=\"{ch_name}\"}}")
        ) > 0.0
    );
    assert!(rec.stop().success());
    // Its own servers (and their ~500 MB of data) go with it.
    drop((ch, pg));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slow_and_surplus_connections_are_cut_off_without_holding_others_up() {
    let dir = tmp("limits");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("record.toml");
    std::fs::write(
        &config,
        format!(
            "[wal]\ndir = \"{}\"\n[inputs]\nmax_connections = 3\nidle_timeout_s = 2\n[[sinks]]\nstore = \"{}\"\n",
            dir.join("wal").display(),
            dir.join("store").display()
        ),
    )
    .unwrap();
    let rec = Rec::start(&["--config", config.to_str().unwrap()]);
    // A slow sender: half a line, then nothing.
    let mut slow = TcpStream::connect(rec.tcp).unwrap();
    slow.write_all(br#"{"stream_key":"exec:sim:S0","#).unwrap();
    let idle = TcpStream::connect(rec.tcp).unwrap();
    let third = TcpStream::connect(rec.tcp).unwrap();
    // A fourth is refused with a reason, at once.
    let mut fourth = BufReader::new(TcpStream::connect(rec.tcp).unwrap());
    let mut l = String::new();
    fourth.read_line(&mut l).unwrap();
    assert!(l.contains("too many connections"), "{l}");
    // The third, sending whole lines, is served while the slow one dawdles.
    let mut w = third.try_clone().unwrap();
    w.write_all(format!("{}\n", event(2)).as_bytes()).unwrap();
    let mut r = BufReader::new(third);
    l.clear();
    r.read_line(&mut l).unwrap();
    assert!(l.contains("\"seq\":1"), "{l}");
    // After the idle timeout the slow and the idle connections are closed by the recorder.
    let t = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(slow.read(&mut buf).unwrap(), 0, "closed");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let mut idle = idle;
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(idle.read(&mut buf).unwrap(), 0, "closed");
    // Their slots are free again.
    let replies = exchange(rec.tcp, &[event(6).as_bytes()]);
    assert_eq!(replies[0]["seq"], 2);
    assert!(rec.stop().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn under_overload_market_data_is_dropped_oldest_first_and_marked_while_critical_events_wait() {
    let dir = tmp("overload");
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store");
    let config = dir.join("record.toml");
    std::fs::write(
        &config,
        format!(
            "[wal]\ndir = \"{}\"\nmax_backlog_events = 100\n[market_data]\nlossy = true\nqueue_per_stream = 10\n[[sinks]]\nstore = \"{}\"\n",
            dir.join("wal").display(),
            store.display()
        ),
    )
    .unwrap();
    let rec = Rec::start(&["--config", config.to_str().unwrap()]);
    // The sink cannot write while another process holds the store's writer lock: a backlog.
    // (-o: the lock is flock's own, not inherited by `sleep`, so killing flock releases it.)
    let mut holder = Command::new("flock")
        .args(["-x", "-o"])
        .arg(store.join("writer.lock"))
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let critical: Vec<u64> = (0..100).map(|i| i * 4).collect(); // all on exec:sim:S0
    send(rec.tcp, critical, Arc::new(Mutex::new(BTreeMap::new())));
    wait_until("overload", Duration::from_secs(10), || {
        metric(&rec.get("/metrics").1, "tapedeck_recorder_overloaded") == 1.0
    });

    // Fifty quotes on one stream: the oldest forty are dropped, ten held.
    let quotes = TcpStream::connect(rec.tcp).unwrap();
    let mut w = quotes.try_clone().unwrap();
    for i in 0..50 {
        writeln!(
            w,
            r#"{{"stream_key":"md:sim:Q","occurred_at":{},"instrument":"Q","event_type":"quote","payload":{{"bid_px":"1.{i:02}","bid_qty":"1","ask_px":"2.00","ask_qty":"1"}}}}"#,
            1_704_153_600_000_000_000i64 + i
        )
        .unwrap();
    }
    // Critical events arriving now wait: none is dropped.
    let late = Arc::new(Mutex::new(BTreeMap::new()));
    let late_sender = {
        let (addr, late) = (rec.tcp, late.clone());
        std::thread::spawn(move || send(addr, (1000..1005).map(|i| i * 4).collect(), late))
    };
    wait_until("forty drops", Duration::from_secs(10), || {
        metric(
            &rec.get("/metrics").1,
            "tapedeck_recorder_dropped_events_total",
        ) == 40.0
    });
    assert!(
        late.lock().unwrap().is_empty(),
        "critical events were acknowledged during overload"
    );

    // The lock is released: the sink catches up, the overload ends, the held events go in.
    holder.kill().unwrap();
    holder.wait().unwrap();
    late_sender.join().unwrap();
    assert_eq!(late.lock().unwrap().len(), 5);
    let mut r = BufReader::new(quotes);
    let replies: Vec<serde_json::Value> = (0..50)
        .map(|_| {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            serde_json::from_str(&l).unwrap()
        })
        .collect();
    for (i, reply) in replies.iter().enumerate() {
        if i < 40 {
            assert!(
                reply["error"].as_str().unwrap().contains("dropped"),
                "{reply}"
            );
        } else {
            assert_eq!(reply["seq"], i as u64 - 38, "{reply}"); // after the gap marker at 1
        }
    }
    let m = rec.get("/metrics").1;
    assert_eq!(metric(&m, "tapedeck_recorder_data_loss"), 1.0);
    assert_eq!(metric(&m, "tapedeck_recorder_gap_events_total"), 1.0);

    // The stream: the marker counting the loss, then the ten newest quotes, gapless.
    let uri = store.display().to_string();
    wait_until(
        "the store to hold the quotes",
        Duration::from_secs(30),
        || stored(&uri).iter().filter(|e| e.1 == "md:sim:Q").count() == 11,
    );
    let s = uri.parse::<StoreUri>().unwrap().open().unwrap();
    let mut got = Vec::new();
    s.read("md:sim:Q", SeqRange::ALL, &mut |e| {
        got.push(e);
        Ok(())
    })
    .unwrap();
    let marker = serde_json::to_value(&got[0].body).unwrap();
    assert_eq!(marker["event_type"], "custom");
    assert_eq!(marker["payload"]["type_name"], "book_gap");
    assert_eq!(marker["payload"]["data"]["dropped"], 40);
    let first_kept = serde_json::to_value(&got[1].body).unwrap();
    assert_eq!(first_kept["payload"]["bid_px"], "1.40");
    assert!(rec.stop().success());
    std::fs::remove_dir_all(&dir).unwrap();
}
