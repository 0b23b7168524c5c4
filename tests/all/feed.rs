//! The recorder's Binance client against `tapedeck feed serve`, both real processes over real
//! sockets, on the real capture in `../shared/data`: what the recorder stores is checked
//! against the capture imported by `import binance` (the oracle), across server-side
//! disconnects, with the exchange's pings and REST rate limits, and over TLS with a
//! self-signed certificate.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tapedeck::event::{Body, Envelope};
use tapedeck::import::binance::Importer;
use tapedeck::import::binance::book::Book;
use tapedeck::store::{EventSource, FileStore, FileStoreOptions, SeqRange};

use super::record::{http, metric, wait_until};
use super::{Proc, tmp};

const STREAM: &str = "md:binance-spot:BTCUSDT";

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

/// What a recorded stream showed, checked against the capture as it went.
#[derive(Debug)]
struct Checked {
    /// Per `book_gap`, in order: its reason and the book events after it found equal to the
    /// oracle's book at the same update id.
    segments: Vec<(String, usize)>,
    /// Deltas whose best bid and ask were compared with the exchange's own `bookTicker` at
    /// the same update id (independent of the simulator's and the importer's book code).
    ticker_checks: usize,
    /// Runs of consecutive capture trades the recorded trades form (1 + the breaks in them).
    trade_runs: usize,
}

/// Checks every book event of a recorded stream, while the book is known, against the
/// oracle; every recorded trade against the capture's (in order, none twice).
fn check(events: &[Envelope], oracle: &Oracle) -> Checked {
    let tickers: BTreeMap<u64, (String, String)> = oracle
        .events
        .iter()
        .filter_map(|e| match &e.body {
            Body::Quote {
                bid_px,
                ask_px,
                update_id: Some(u),
                ..
            } => Some((*u, (bid_px.to_string(), ask_px.to_string()))),
            _ => None,
        })
        .collect();
    let trade_at: BTreeMap<u64, usize> = oracle
        .events
        .iter()
        .filter_map(|e| match e.body {
            Body::Trade { trade_id, .. } => Some(trade_id),
            _ => None,
        })
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let (mut book, mut known) = (Book::default(), false);
    let mut c = Checked {
        segments: Vec::new(),
        ticker_checks: 0,
        trade_runs: 0,
    };
    let mut last_trade: Option<usize> = None;
    for e in events {
        if let Body::Trade { trade_id, .. } = e.body {
            let at = trade_at[&trade_id];
            if let Some(l) = last_trade {
                assert!(
                    at > l,
                    "seq {}: trade {trade_id} out of order or twice",
                    e.seq
                );
            }
            if last_trade.is_none_or(|l| at != l + 1) {
                c.trade_runs += 1;
            }
            last_trade = Some(at);
        }
        match book.apply_event(&e.body) {
            None => {
                let Body::Custom { data, .. } = &e.body else {
                    unreachable!()
                };
                let reason = data["reason"].as_str().unwrap_or_default().to_string();
                assert!(
                    ["feed_started", "feed_disconnected"].contains(&reason.as_str()),
                    "seq {}: {data}",
                    e.seq
                );
                known = false;
                c.segments.push((reason, 0));
            }
            Some(true) => {
                known |= matches!(e.body, Body::BookSnapshot { .. });
                assert!(
                    known,
                    "seq {}: a delta before the snapshot after a gap",
                    e.seq
                );
                let want = oracle.books.get(&book.update_id).unwrap_or_else(|| {
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
                c.segments.last_mut().expect("a book_gap first").1 += 1;
                if let Some((bid, ask)) = tickers.get(&book.update_id) {
                    let best = |l: Option<&tapedeck::event::LevelPair>| l.map(|l| l[0].to_string());
                    assert_eq!(
                        best(book.bids().next()).as_ref(),
                        Some(bid),
                        "seq {}",
                        e.seq
                    );
                    assert_eq!(
                        best(book.asks().next()).as_ref(),
                        Some(ask),
                        "seq {}",
                        e.seq
                    );
                    c.ticker_checks += 1;
                }
            }
            Some(false) => {}
        }
    }
    c
}

#[test]
fn a_recorded_session_equals_the_imported_capture_on_both_sides_of_server_disconnects_pings_and_rate_limits()
 {
    let Some(capture) = super::binance::capture() else {
        return;
    };
    let dir = tmp("disconnects");
    let oracle = oracle(&capture, &dir);
    let capture = capture.display().to_string();
    // 41,249 lines over 346 s of capture time: at 30x about 12 s, two disconnects.
    let feed = Proc::start(&[
        "feed",
        "serve",
        "--capture",
        &capture,
        "--listen",
        "127.0.0.1:0",
        "--speed",
        "30",
        "--disconnect-every",
        "15000",
        // Snapshots trail the stream by 30 diffs (3 s of capture): a client that asks at once
        // gets one older than what it has buffered and must ask again.
        "--snapshot-lag",
        "30",
        // One snapshot request a second: the request that follows a dropped snapshot meets a
        // 429, and the client must send nothing until its Retry-After has passed (a request
        // meanwhile would get 418).
        "--rest-limit",
        "1",
        "--rest-window-ms",
        "1000",
        // Pings every 100 ms; a connection that leaves one unanswered for a second is closed.
        "--ping-every-ms",
        "100",
        "--pong-timeout-ms",
        "1000",
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
    let st = status(at);
    assert_eq!(st["disconnects"], 2, "{st}");
    assert!(st["rate_limited"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["banned"], 0, "a request during a Retry-After: {st}");
    let (pings, pongs) = (st["pings"].as_u64().unwrap(), st["pongs"].as_u64().unwrap());
    // Every ping answered within the second, but those still unread in a connection's backlog
    // when the simulator dropped it.
    assert!(pings >= 50 && pongs * 2 >= pings, "{st}");
    assert_eq!(st["pong_timeouts"], 0, "{st}");
    assert_eq!(
        metric(&m, "tapedeck_recorder_feed_reconnects_total"),
        2.0,
        "{m}"
    );
    // The start, and each disconnect.
    assert_eq!(
        metric(&m, "tapedeck_recorder_feed_gap_events_total"),
        3.0,
        "{m}"
    );
    // More snapshots taken than stored: after a reconnect the first one trails what the
    // client has buffered, is dropped, and another is taken.
    let taken = metric(&m, "tapedeck_recorder_feed_snapshots_total");
    assert!(taken > 3.0, "{m}");
    rec.stop();
    feed.stop();

    let events = read_stream(&dir.join("store"));
    let c = check(&events, &oracle);
    // A snapshot is stored only with the diff that continues it (a trailing one that no
    // buffered diff straddles is dropped, and another taken).
    for w in events.windows(2) {
        if matches!(w[0].body, Body::BookSnapshot { .. }) {
            assert!(
                matches!(w[1].body, Body::BookDelta { .. }),
                "seq {}: a snapshot not followed by its diff",
                w[0].seq
            );
        }
    }
    // Before the first break, between the two, and after the second: the book is the
    // exchange's, resynced from a fresh snapshot each time.
    let reasons: Vec<&str> = c.segments.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        reasons,
        ["feed_started", "feed_disconnected", "feed_disconnected"]
    );
    assert!(c.segments.iter().all(|s| s.1 > 100), "{c:?}");
    assert!(c.ticker_checks > 100, "{c:?}");
    assert_eq!(
        count(&events, |b| matches!(b, Body::BookSnapshot { .. })),
        3
    );
    // What was sent while the client was away is missing, nothing else: the trades are three
    // unbroken runs of the capture's.
    assert_eq!(c.trade_runs, 3, "{c:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_simulator_answers_429_past_its_rest_limit_and_418_to_a_request_that_ignores_it() {
    let Some(capture) = super::binance::capture() else {
        return;
    };
    let capture = capture.display().to_string();
    let feed = Proc::start(&[
        "feed",
        "serve",
        "--capture",
        &capture,
        "--listen",
        "127.0.0.1:0",
        "--rest-limit",
        "1",
        "--rest-window-ms",
        "60000",
    ]);
    let at = feed.addr("ws://");
    let get = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(at).unwrap();
        write!(
            s,
            "GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code: u16 = out[9..12].parse().unwrap();
        let retry_after = out
            .lines()
            .find_map(|l| l.strip_prefix("retry-after: "))
            .map(|v| v.trim().parse::<u64>().unwrap());
        (code, retry_after)
    };
    // No client has connected, so the capture has not started: the book is not known yet
    // (503 after a wait), and the request counts all the same.
    assert_eq!(get(), (503, None));
    let (code, wait) = get();
    assert_eq!(code, 429);
    assert!((55..=60).contains(&wait.unwrap()), "{wait:?}");
    let (code, wait) = get();
    assert_eq!(code, 418);
    assert!(wait.is_some());
    let st = status(at);
    assert_eq!(
        (st["rate_limited"].as_u64(), st["banned"].as_u64()),
        (Some(1), Some(1))
    );
    feed.stop();
}

#[test]
fn the_binance_client_speaks_tls_and_trusts_only_what_it_is_told_to() {
    let Some(capture) = super::binance::capture() else {
        return;
    };
    let dir = tmp("tls");
    std::fs::create_dir_all(&dir).unwrap();
    // A CA of our own and a certificate for 127.0.0.1 signed by it.
    super::local_ca(&dir);
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
    let c = check(&events, &oracle);
    assert_eq!(c.segments.len(), 1, "{c:?}");
    assert!(c.segments[0].1 > 1000 && c.ticker_checks > 500, "{c:?}");
    assert_eq!(c.trade_runs, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
