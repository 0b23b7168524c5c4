//! The recorder's Binance client against `tapedeck feed serve`, both real processes over real
//! sockets, on the real capture in `../shared/data`: what the recorder stores is checked
//! against the capture imported by `import binance` (the oracle), across server-side
//! disconnects, and over TLS with a self-signed certificate.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tapedeck::event::{Body, Envelope};
use tapedeck::import::binance::Importer;
use tapedeck::import::binance::book::Book;
use tapedeck::store::{EventSource, FileStore, FileStoreOptions, SeqRange};

use super::record::{http, metric, wait_until};
use super::tmp;

const STREAM: &str = "md:binance-spot:BTCUSDT";

/// A running process whose first stdout line says where it listens; killed when dropped.
struct Proc {
    child: Child,
    first_line: String,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        assert!(!first_line.is_empty(), "tapedeck {args:?} said nothing");
        Proc { child, first_line }
    }

    /// The address after `prefix` in the first line.
    fn addr(&self, prefix: &str) -> SocketAddr {
        let at = self
            .first_line
            .split_once(prefix)
            .unwrap_or_else(|| panic!("no {prefix:?} in {:?}", self.first_line))
            .1;
        let end = at.find(|c: char| c == '/' || c == ',' || c.is_whitespace());
        at[..end.unwrap_or(at.len())].parse().unwrap()
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(feed: SocketAddr) -> serde_json::Value {
    let (code, body) = http(feed, "GET", "/sim/status", "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Starts a recorder with one Binance feed (`extra` is added to its `[[inputs.binance]]`
/// table) into a file store in `dir`.
fn recorder(dir: &Path, ws: &str, rest: &str, extra: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("record.toml");
    let toml = format!(
        "[wal]\ndir = \"{wal}\"\n\n[[sinks]]\nstore = \"{store}\"\nflush_ms = 20\n\n\
         [[inputs.binance]]\nws_url = \"{ws}\"\nrest_url = \"{rest}\"\nsymbols = [\"BTCUSDT\"]\n\
         snapshot_limit = 5000\nreconnect_min_ms = 200\n{extra}\n",
        wal = dir.join("wal").display(),
        store = dir.join("store").display(),
    );
    std::fs::write(&cfg, toml).unwrap();
    let cfg = cfg.display().to_string();
    Proc::start(&["record", "--config", &cfg, "--http", "127.0.0.1:0"])
}

/// The recorder's queued events (in the WAL, not yet stored) and feed messages received.
fn progress(rec: SocketAddr) -> (f64, f64) {
    let m = http(rec, "GET", "/metrics", "").1;
    let queued = m
        .lines()
        .filter(|l| l.starts_with("tapedeck_recorder_sink_queue_events{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (queued, metric(&m, "tapedeck_recorder_feed_messages_total"))
}

/// Waits until the recorder has received `n` feed messages and stored everything.
fn wait_for_messages(rec: SocketAddr, n: u64) {
    wait_until(
        "the recorder to take the capture",
        Duration::from_secs(120),
        || progress(rec) == (0.0, n as f64),
    );
}

/// Waits until the feed has sent its whole capture and the recorder has stored what it took
/// (its count of messages stays put for half a second).
fn wait_for_the_end(feed: SocketAddr, rec: SocketAddr) {
    wait_until("the capture to be sent", Duration::from_secs(120), || {
        status(feed)["done"] == true
    });
    let (mut last, mut same) = (-1.0, 0);
    wait_until(
        "the recorder to store what it took",
        Duration::from_secs(60),
        || {
            let (queued, took) = progress(rec);
            same = if took == last { same + 1 } else { 0 };
            last = took;
            same >= 5 && queued == 0.0
        },
    );
}

fn read_stream(store: &Path) -> Vec<Envelope> {
    let store = FileStore::open(store).unwrap();
    let mut events = Vec::new();
    store
        .read(STREAM, SeqRange::ALL, &mut |e| {
            events.push(e);
            Ok(())
        })
        .unwrap();
    events
}

fn digest(b: &Book) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for l in b.bids().chain(b.asks()) {
        (l[0].to_string(), l[1].to_string()).hash(&mut h);
    }
    b.update_id.hash(&mut h);
    h.finish()
}

/// The capture imported by `import binance`.
struct Oracle {
    events: Vec<Envelope>,
    /// The book's digest after every update id it reached.
    books: BTreeMap<u64, u64>,
    /// Stream messages in the capture (its lines but the REST snapshots).
    messages: u64,
}

fn oracle(capture: &Path, dir: &Path) -> Oracle {
    let store_dir = dir.join("oracle");
    let mut store = FileStore::create(&store_dir, FileStoreOptions::default()).unwrap();
    let mut imp = Importer::new(&mut store, None, None);
    imp.import_file(capture).unwrap();
    let summary = imp.finish().unwrap();
    assert!(
        summary.gaps.is_empty() && summary.quarantined == 0,
        "{summary:?}"
    );
    drop(store);
    let events = read_stream(&store_dir);
    let (mut book, mut books) = (Book::default(), BTreeMap::new());
    for e in &events {
        if book.apply_event(&e.body) == Some(true) {
            let (bids, asks) = book.depth();
            assert!(
                bids <= 5000 && asks <= 5000,
                "the oracle outgrew a 5000-level snapshot"
            );
            books.insert(book.update_id, digest(&book));
        }
    }
    Oracle {
        events,
        books,
        messages: summary.lines - summary.snapshots,
    }
}

fn count(events: &[Envelope], f: impl Fn(&Body) -> bool) -> usize {
    events.iter().filter(|e| f(&e.body)).count()
}

fn is_trade(b: &Body) -> bool {
    matches!(b, Body::Trade { .. })
}

fn is_quote(b: &Body) -> bool {
    matches!(b, Body::Quote { .. })
}

/// Checks the recorded book against the oracle at every book event while it is known;
/// returns how many checks fell between each pair of `book_gap`s (and before the first, after
/// the last).
fn check_book(events: &[Envelope], oracle: &BTreeMap<u64, u64>) -> Vec<usize> {
    let (mut book, mut known) = (Book::default(), false);
    let mut checks = vec![0];
    let mut trade_ids = Vec::new();
    for e in events {
        if let Body::Trade { trade_id, .. } = e.body {
            trade_ids.push(trade_id);
        }
        match book.apply_event(&e.body) {
            None => {
                let Body::Custom { data, .. } = &e.body else {
                    unreachable!()
                };
                assert_eq!(data["reason"], "feed_disconnected", "seq {}: {data}", e.seq);
                known = false;
                checks.push(0);
            }
            Some(true) => {
                known |= matches!(e.body, Body::BookSnapshot { .. });
                assert!(
                    known,
                    "seq {}: a delta before the snapshot after a gap",
                    e.seq
                );
                let want = oracle.get(&book.update_id).unwrap_or_else(|| {
                    panic!(
                        "seq {}: update id {} is not in the oracle",
                        e.seq, book.update_id
                    )
                });
                assert_eq!(
                    digest(&book),
                    *want,
                    "seq {}: the book at {} differs",
                    e.seq,
                    book.update_id
                );
                *checks.last_mut().unwrap() += 1;
            }
            Some(false) => {}
        }
    }
    assert!(
        trade_ids.is_sorted() && trade_ids.windows(2).all(|w| w[0] < w[1]),
        "a trade twice"
    );
    checks
}

#[test]
fn a_recorded_session_equals_the_imported_capture_on_both_sides_of_server_disconnects() {
    let Some(capture) = super::binance::capture() else {
        return;
    };
    let dir = tmp("disconnects");
    let oracle = oracle(&capture, &dir);
    let all = &oracle.events;
    let capture = capture.display().to_string();
    // 41,249 lines over 346 s of capture time: at 40x about 9 s, two disconnects.
    let feed = Proc::start(&[
        "feed",
        "serve",
        "--capture",
        &capture,
        "--listen",
        "127.0.0.1:0",
        "--speed",
        "40",
        "--disconnect-every",
        "15000",
    ]);
    let at = feed.addr("ws://");
    let rec = recorder(
        &dir,
        &format!("ws://{at}/stream"),
        &format!("http://{at}"),
        "",
    );
    let rec_http = rec.addr("http ");
    wait_for_the_end(at, rec_http);
    let m = http(rec_http, "GET", "/metrics", "").1;
    assert_eq!(status(at)["disconnects"], 2);
    assert_eq!(
        metric(&m, "tapedeck_recorder_feed_reconnects_total"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "tapedeck_recorder_feed_gap_events_total"),
        2.0,
        "{m}"
    );
    rec.stop();
    feed.stop();

    let events = read_stream(&dir.join("store"));
    let checks = check_book(&events, &oracle.books);
    // Before the first break, between the two, and after the second: the book is the
    // exchange's, resynced from a fresh snapshot each time.
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks.iter().all(|c| *c > 100), "{checks:?}");
    assert_eq!(
        count(&events, |b| matches!(b, Body::BookSnapshot { .. })),
        3
    );
    // What was sent while the client was away is missing, nothing else.
    let (trades, quotes) = (count(&events, is_trade), count(&events, is_quote));
    assert!(trades < count(all, is_trade) && trades > count(all, is_trade) / 2);
    assert!(quotes < count(all, is_quote) && quotes > count(all, is_quote) / 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_binance_client_speaks_tls_and_trusts_only_what_it_is_told_to() {
    let Some(capture) = super::binance::capture() else {
        return;
    };
    let dir = tmp("tls");
    std::fs::create_dir_all(&dir).unwrap();
    // A CA of our own and a certificate for 127.0.0.1 signed by it.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tapedeck test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    let oracle = oracle(&capture, &dir);
    let all = &oracle.events;
    let (cert, key) = (dir.join("leaf.pem"), dir.join("leaf.key"));
    let feed = Proc::start(&[
        "feed",
        "serve",
        "--capture",
        &capture.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--speed",
        "0",
        "--tls-cert",
        &cert.display().to_string(),
        "--tls-key",
        &key.display().to_string(),
    ]);
    let at = feed.addr("wss://");
    let (ws, rest) = (format!("wss://{at}/stream"), format!("https://{at}"));

    // Without the CA the certificate is refused: no connection, no data.
    // (The capture starts playing at the first WebSocket connection: that the trusting
    // recorder below receives all of it shows this one never got that far.)
    let untrusting = recorder(&dir.join("untrusting"), &ws, &rest, "");
    let m_at = untrusting.addr("http ");
    wait_until("a refused TLS handshake", Duration::from_secs(30), || {
        let m = http(m_at, "GET", "/metrics", "").1;
        metric(&m, "tapedeck_recorder_feed_reconnects_total") >= 1.0
    });
    assert_eq!(progress(m_at).1, 0.0);
    untrusting.stop();

    let ca = format!("ca_file = \"{}\"", dir.join("ca.pem").display());
    let rec = recorder(&dir.join("trusting"), &ws, &rest, &ca);
    let rec_http = rec.addr("http ");
    wait_for_messages(rec_http, oracle.messages);
    rec.stop();
    feed.stop();
    let events = read_stream(&dir.join("trusting/store"));
    // One connection from the first message on: every trade and quote of the capture.
    assert_eq!(count(&events, is_trade), count(all, is_trade));
    assert_eq!(count(&events, is_quote), count(all, is_quote));
    let checks = check_book(&events, &oracle.books);
    assert_eq!(checks.len(), 1);
    assert!(checks[0] > 1000, "{checks:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
