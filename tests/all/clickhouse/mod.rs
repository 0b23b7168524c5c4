//! The ClickHouse store against a real server (Debian's clickhouse-server 18.16):
//! `$TAPEDECK_CH_URL` (`scripts/test.sh` starts it with `scripts/ch.sh`); every test gets a
//! database of its own. Without `$TAPEDECK_CH_URL` the tests say so and pass (CI sets it).
//! The fault tests (`faults`) stop servers: they start a private instance each
//! (`scripts/ch.sh` with its own directory and ports), never the shared one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use tapedeck::Error;
use tapedeck::event::{Body, Dec, Envelope, LiquidityName, OrderTypeName, SideName, TifName};
use tapedeck::store::clickhouse::{
    ChStore, RetentionPolicy, apply_retention, migrate, recreate_database,
};
use tapedeck::store::{EventSink, EventSource, SeqRange, StoredSnapshot, records_from_envelopes};
use tapedeck_test_guests as guests;

mod faults;

use super::{assert_same_run_dirs, fixtures_uri, tapedeck, tmp};

/// The shared test server, or `None` (with a note) when `$TAPEDECK_CH_URL` is unset.
pub(crate) fn server() -> Option<String> {
    let url = std::env::var("TAPEDECK_CH_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: TAPEDECK_CH_URL is unset (scripts/ch.sh start prints one)");
    }
    url
}

/// A fresh, migrated database `tdch_<name>` on `server`; its URI.
pub(crate) fn db(server: &str, name: &str) -> String {
    let url = recreate_database(server, &format!("tdch_{name}")).unwrap();
    migrate(&url).unwrap();
    url
}

const T0: i64 = 1_704_153_600_000_000_000; // 2024-01-02T00:00:00Z

fn quote(stream: &str, seq: u64, bid: i64) -> Envelope {
    Envelope::new(
        stream,
        seq,
        T0 + seq as i64 * 1_000_000,
        Some("BTCUSDT"),
        Body::Quote {
            bid_px: Dec::new(bid, 2),
            bid_qty: Dec::new(15, 1),
            ask_px: Dec::new(bid + 1, 2),
            ask_qty: Dec::new(2, 0),
            update_id: None,
        },
    )
}

fn quotes(stream: &str, from: u64, n: u64, bid0: i64) -> Vec<Envelope> {
    (from..from + n)
        .map(|s| quote(stream, s, bid0 + s as i64))
        .collect()
}

fn read_all(store: &dyn EventSource, stream: &str) -> Vec<Envelope> {
    let mut out = Vec::new();
    store
        .read(stream, SeqRange::ALL, &mut |e| {
            out.push(e);
            Ok(())
        })
        .unwrap();
    out
}

fn records(store: &dyn EventSource, stream: &str, range: SeqRange) -> Vec<(u64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .read_records(stream, range, &mut |s, t, r| {
            out.push((s, t, r.to_vec()));
            Ok(())
        })
        .unwrap();
    out
}

/// One `UInt64` from SQL.
fn count(store: &ChStore, sql: &str) -> u64 {
    let text = store
        .block_on(
            store
                .client()
                .query(sql)
                .fetch_bytes("TabSeparated")
                .unwrap()
                .collect(),
        )
        .unwrap();
    String::from_utf8_lossy(&text).trim().parse().unwrap()
}

/// A stream with every kind of event the typed tables take.
fn mixed(stream: &str) -> Vec<Envelope> {
    let d = |s: &str| s.parse::<Dec>().unwrap();
    let bodies = vec![
        Body::Trade {
            price: d("100.5"),
            qty: d("0.25"),
            trade_id: 9,
            aggressor: Some(SideName::Sell),
        },
        Body::BookSnapshot {
            update_id: 1,
            bids: vec![[d("100.4"), d("1")], [d("100.3"), d("2")]],
            asks: vec![[d("100.6"), d("3")]],
        },
        Body::OrderSubmitted {
            client_order_id: 7,
            side: SideName::Buy,
            order_type: OrderTypeName::Limit,
            tif: TifName::Ioc,
            price: Some(d("100.50")),
            qty: d("1"),
        },
        Body::OrderAcked {
            client_order_id: 7,
            venue_order_id: 70,
        },
        Body::Fill {
            client_order_id: 7,
            trade_id: 10,
            side: SideName::Buy,
            liquidity: Some(LiquidityName::Taker),
            is_final: true,
            price: d("100.5"),
            qty: d("1"),
            fee: d("0.01"),
        },
        Body::Position {
            qty: d("1"),
            avg_price: d("100.5"),
            realized_pnl: d("0"),
        },
        Body::Balance {
            total: d("1000.123456789"),
            free: d("900"),
            locked: d("100.123456789"),
        },
        Body::OrderRejected {
            client_order_id: 8,
            reason: "it's \"bad\"".into(),
        },
        Body::Custom {
            type_name: "note".into(),
            data: serde_json::json!({"text": "ünïcode ?", "n": 1.5}),
        },
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let mut e = Envelope::new(stream, i as u64 + 1, T0 + i as i64, Some("BTCUSDT"), b);
            e.tenancy.tenant_id = Some("acct-1".into());
            e.correlation.trace_id = Some(format!("trace-{i}"));
            e.ingested_at += 5;
            e
        })
        .collect()
}

#[test]
fn appends_read_back_whole_with_typed_tables_and_packed_runs() {
    let Some(server) = server() else { return };
    let url = db(&server, "roundtrip");
    let mut store = ChStore::connect(&url).unwrap();
    let events = mixed("orders:x");
    let r = store.append(&events).unwrap();
    assert_eq!((r.appended(), r.duplicates()), (9, 0));
    let q = quotes("md:x", 1, 5000, 10_000);
    EventSink::append(&mut store, &q).unwrap();
    assert_eq!(read_all(&store, "orders:x"), events);
    assert_eq!(read_all(&store, "md:x"), q);
    // Packed runs equal the envelopes encoded, whole and in part.
    for range in [
        SeqRange::ALL,
        SeqRange {
            from: 4090,
            to: 4200,
        },
    ] {
        let mut want = Vec::new();
        records_from_envelopes(&store, "md:x", range, &mut |s, t, r| {
            want.push((s, t, r.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(records(&store, "md:x", range), want);
    }
    let streams = store.streams().unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(
        (streams[0].key.as_str(), streams[0].last_seq),
        ("md:x", 5000)
    );
    assert_eq!(streams[1].counts["fill"], 1);
    for (table, n) in [
        ("market_data", 5002),
        ("orders", 3),
        ("fills", 1),
        ("positions_intraday", 1),
        ("account_state", 1),
        ("system_events", 1),
    ] {
        assert_eq!(
            count(&store, &format!("SELECT count() FROM {table}")),
            n,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &store,
            "SELECT toUInt64(sum(toFloat64(fill_price)) * 100) FROM fills"
        ),
        10050
    );
    // Snapshots: a later put of the same key replaces it.
    let snap = |v: i64| StoredSnapshot {
        stream: "md:x".into(),
        seq: 10,
        projector: "p".into(),
        state: serde_json::json!({ "v": v }),
        guest_snapshot: None,
    };
    store.put_snapshot(&snap(1)).unwrap();
    store.put_snapshot(&snap(2)).unwrap();
    assert_eq!(store.snapshots("md:x").unwrap(), vec![snap(2)]);
    let mut past = snap(3);
    past.seq = 5001;
    assert!(store.put_snapshot(&past).is_err());
    let at = store
        .quarantine("test", &serde_json::json!({"line": "x"}))
        .unwrap();
    assert!(at.contains("quarantine"), "{at}");
}

#[test]
fn two_writers_racing_on_a_stream_end_gapless_without_duplicates() {
    let Some(server) = server() else { return };
    let url = db(&server, "race");
    // Two connections: the lock is the server's, not this process's.
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [10_000i64, 20_000]
        .into_iter()
        .map(|bid0| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = ChStore::connect(&url).unwrap();
                barrier.wait();
                let (mut conflicts, mut mine) = (0, 0);
                // Five batches of 40 each, each placed after whatever the stream holds.
                while mine < 5 {
                    let last = store.streams().unwrap().first().map_or(0, |s| s.last_seq);
                    let batch = quotes("md:race", last + 1, 40, bid0 + mine * 100);
                    match store.append(&batch) {
                        Ok(r) => {
                            assert_eq!(r.appended(), 40);
                            mine += 1;
                        }
                        Err(Error::Conflict { .. } | Error::SeqGap { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let store = ChStore::connect(&url).unwrap();
    let events = read_all(&store, "md:race");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>(), "gapless");
    assert_eq!(count(&store, "SELECT count() FROM events"), 400);
    assert_eq!(count(&store, "SELECT count() FROM market_data"), 400);
    // Each writer's batches are whole, in its order.
    let bid = |e: &Envelope| match &e.body {
        Body::Quote { bid_px, .. } => bid_px.0.mantissa,
        _ => unreachable!(),
    };
    for chunk in events.chunks(40) {
        let base = bid(&chunk[0]) - chunk[0].seq as i64;
        assert!(chunk.iter().all(|e| bid(e) - e.seq as i64 == base));
    }
    eprintln!("racing writers: {conflicts} conflicts retried");
    // The same race with stale expectations: exactly one of two batches for seqs 401.. wins.
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = [1i64, 2]
        .into_iter()
        .map(|k| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = ChStore::connect(&url).unwrap();
                barrier.wait();
                store.append(&quotes("md:race", 401, 50, k * 1_000_000))
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().any(|r| matches!(
        r,
        Err(Error::Conflict {
            expected: 400,
            actual: 450,
            ..
        })
    )));
    assert_eq!(count(&store, "SELECT count() FROM events"), 450);
}

#[test]
fn a_stream_of_many_runs_reads_whole_and_in_ranges_across_slices() {
    // Appends of 10,000 make runs of 4096, 4096 and 1808: 21 runs, more than one slice of a
    // replay read, with slice edges inside appends.
    let Some(server) = server() else { return };
    let url = db(&server, "slices");
    let store = ChStore::connect(&url).unwrap();
    let q = quotes("md:s", 1, 70_000, 1000);
    for chunk in q.chunks(10_000) {
        store.append(chunk).unwrap();
    }
    let r = |from, to| SeqRange { from, to };
    for range in [
        SeqRange::ALL,
        r(1, 1),
        r(4000, 70_000),
        r(65_530, 65_540),
        r(69_999, u64::MAX),
        r(70_001, u64::MAX),
    ] {
        let mut want = Vec::new();
        records_from_envelopes(&store, "md:s", range, &mut |s, t, r| {
            want.push((s, t, r.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(records(&store, "md:s", range), want, "{range:?}");
    }
}

#[test]
fn a_retried_append_stores_once_and_a_failed_one_is_rolled_back() {
    let Some(server) = server() else { return };
    let url = db(&server, "retry");
    let store = ChStore::connect(&url).unwrap();
    let batch = quotes("md:r", 1, 100, 500);
    assert_eq!(store.append(&batch).unwrap().appended(), 100);
    // The reply was lost (a timeout): the writer sends the same batch again.
    let again = store.append(&batch).unwrap();
    assert_eq!((again.appended(), again.duplicates()), (0, 100));
    assert_eq!(again.streams[0].duplicates[5].event_id, batch[5].event_id);
    // Overlapping the end: the stored part is a duplicate, the rest is stored.
    let more = quotes("md:r", 51, 100, 500);
    let r = store.append(&more).unwrap();
    assert_eq!((r.appended(), r.duplicates()), (50, 50));
    // Different events at stored seqs: a conflict naming where the stream is.
    let e = store.append(&quotes("md:r", 101, 10, 9)).unwrap_err();
    assert!(e.to_string().contains("retry from seq 150"), "{e}");
    // An append that died after writing rows but before committing (what a server stopped
    // mid-append leaves): its rows are invisible, and the next append deletes them.
    store
        .execute(
            "INSERT INTO events (stream_key, seq, event_id, event_type, occurred_at_ns, \
             ingested_at_ns, payload, append_id) \
             VALUES ('md:r', 151, 'x', 'quote', 1704153600000000000, 0, '{}', 'dead')",
        )
        .unwrap();
    store
        .execute(
            "INSERT INTO market_data (ts_exchange, ts_local, symbol, kind, source, stream_key, seq) \
             VALUES (1704153600000000000, 0, 'BTCUSDT', 'quote', 'md:r', 'md:r', 151)",
        )
        .unwrap();
    assert_eq!(read_all(&store, "md:r").len(), 150);
    assert_eq!(store.streams().unwrap()[0].last_seq, 150);
    let next = quotes("md:r", 151, 10, 700);
    assert_eq!(store.append(&next).unwrap().appended(), 10);
    assert_eq!(read_all(&store, "md:r")[150..], next[..]);
    assert_eq!(count(&store, "SELECT count() FROM events"), 160);
    assert_eq!(count(&store, "SELECT count() FROM market_data"), 160);
    // A stale lock (its writer died) is broken once its lease is over.
    let store = store.with_lease_secs(1);
    store
        .execute(&format!(
            "CREATE TABLE {} (owner String DEFAULT 'w_dead') ENGINE = Memory",
            tapedeck::store::clickhouse::lock_table("md:r")
        ))
        .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(
        store.append(&quotes("md:r", 161, 1, 1)).unwrap().appended(),
        1
    );
    assert!(t.elapsed().as_secs() < 10);
    // A lock whose holder was a process of this machine that has exited (a writer killed with
    // SIGKILL, restarted) is broken at once, within the default 60 s lease.
    let store = ChStore::connect(&url).unwrap();
    if let Some(holder) = dead_process_of_this_machine() {
        store
            .execute(&format!(
                "CREATE TABLE {} (owner String DEFAULT 'w_killed', holder String DEFAULT '{holder}') ENGINE = Memory",
                tapedeck::store::clickhouse::lock_table("md:r")
            ))
            .unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            store.append(&quotes("md:r", 162, 1, 1)).unwrap().appended(),
            1
        );
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    }
}

/// A lock holder id (`boot/pidns/pid/start`) of a process of this machine that has exited
/// (None off Linux).
fn dead_process_of_this_machine() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Some(format!("{}/{}/{pid}/1", boot.trim(), ns.display()))
}

fn dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

#[test]
fn replay_regress_and_snapshot_checks_from_clickhouse_match_the_file_store() {
    let Some(server) = server() else { return };
    let url = recreate_database(&server, "tdch_conform").unwrap();
    let run = |args: &[&str]| {
        let out = tapedeck(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["migrate", "--store", &url]);
    assert!(run(&["migrate", "--store", &url]).contains("up to date"));
    let fixtures = fixtures_uri();
    let out = run(&["copy", "--from", &fixtures, "--to", &url]);
    assert!(
        out.contains("6 streams: 3600 events, 54 snapshots"),
        "{out}"
    );
    // Again: nothing stored twice.
    run(&["copy", "--from", &fixtures, "--to", &url]);
    let store = ChStore::connect(&url).unwrap();
    assert_eq!(count(&store, "SELECT count() FROM events"), 3600);
    assert_eq!(count(&store, "SELECT count() FROM snapshots FINAL"), 54);
    let streams = |uri: &str| run(&["streams", "--store", uri, "--json"]);
    assert_eq!(streams(&fixtures), streams(&url));

    let scenarios: [(&str, Vec<&str>); 3] = [
        (
            "replay",
            vec![
                "replay",
                "--strategy",
                guests::EMA_CROSS,
                "--projector",
                guests::POSITIONS,
                "--projector",
                guests::ORDERS,
                "--projector",
                guests::BOOK,
                "--jobs",
                "2",
            ],
        ),
        (
            "replay-from",
            vec![
                "replay",
                "--projector",
                guests::BOOK,
                "--from",
                "333",
                "--to",
                "555",
            ],
        ),
        (
            "regress",
            vec![
                "regress",
                "--baseline",
                guests::EMA_CROSS,
                "--candidate",
                guests::EMA_CROSS_V2,
                "--jobs",
                "2",
            ],
        ),
    ];
    for (name, args) in scenarios {
        let dirs: Vec<PathBuf> = [&fixtures, &url]
            .into_iter()
            .map(|store| {
                let out = tmp(&format!(
                    "{name}-{}",
                    if store == &url { "ch" } else { "file" }
                ));
                let mut a = args.clone();
                a.extend(["--store", store, "--out", out.to_str().unwrap()]);
                let o = tapedeck(&a);
                assert!(
                    matches!(o.status.code(), Some(0 | 1)),
                    "{name}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                out
            })
            .collect();
        let mut files: Vec<String> = dir_bytes(&dirs[0]).into_iter().map(|f| f.0).collect();
        assert!(files.len() >= 5, "{name}: {files:?}");
        for f in ["config.json", "report.md", "report.html"] {
            let read = |d: &Path, uri: &str| {
                std::fs::read_to_string(d.join(f))
                    .unwrap_or_default()
                    .replace(&format!("file://{fixtures}"), "STORE")
                    .replace(uri, "STORE")
            };
            assert_eq!(
                read(&dirs[0], &fixtures),
                read(&dirs[1], &url),
                "{name}/{f}"
            );
        }
        files.retain(|f| {
            !["config.json", "report.md", "report.html", "summary.json"].contains(&f.as_str())
        });
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        assert_same_run_dirs(&dirs[0], &dirs[1], &files);
        for d in dirs {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    // Snapshot files written from ClickHouse are the file store's, byte for byte apart from
    // the command line in their header (which names the store); accepted from the file store,
    // they check clean against ClickHouse.
    let snapshot = |store: &str, dir: &Path, mode: &str| {
        tapedeck(&[
            "snapshot",
            "--store",
            store,
            "--projector",
            guests::ORDERS,
            "--every",
            "150",
            "--snapshots",
            dir.to_str().unwrap(),
            mode,
        ])
    };
    let (a, b) = (tmp("snaps-file"), tmp("snaps-ch"));
    for (store, dir) in [(&fixtures, &a), (&url, &b)] {
        let o = snapshot(store, dir, "--accept");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let texts = |dir: &Path, uri: &str| -> Vec<(String, String)> {
        dir_bytes(dir)
            .into_iter()
            .map(|(f, b)| (f, String::from_utf8(b).unwrap().replace(uri, "STORE")))
            .collect()
    };
    let from_files = texts(&a, &fixtures);
    assert_eq!(
        from_files.len(),
        6 * 4,
        "every 150 of 600 events, 6 streams"
    );
    assert!(from_files == texts(&b, &url), "the .snap files differ");
    let check = snapshot(&url, &a, "--check");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(dir_bytes(&a).len(), 6 * 4, "no .snap.new");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_missing_or_foreign_schema_is_refused_with_what_to_run() {
    let Some(server) = server() else { return };
    let bare = recreate_database(&server, "tdch_bare").unwrap();
    let e = ChStore::connect(&bare).unwrap_err().to_string();
    assert!(
        e.contains("run `tapedeck migrate --store clickhouse://"),
        "{e}"
    );
    let url = db(&server, "newer");
    let store = ChStore::connect(&url).unwrap();
    store
        .execute("INSERT INTO tapedeck_migrations (version, name) VALUES (99, 'future')")
        .unwrap();
    let e = ChStore::connect(&url).unwrap_err().to_string();
    assert!(
        e.contains("at migration 99, newer than this tapedeck"),
        "{e}"
    );
    // Through the CLI: exit 2 and the message.
    let o = tapedeck(&["streams", "--store", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("use a newer tapedeck"));
}

#[test]
fn a_store_at_migration_1_is_refused_then_migrated_with_its_events() {
    // A database as tapedeck with only 0001 left it (`events` still has `packed`).
    let Some(server) = server() else { return };
    let url = db(&server, "at_v1");
    let store = ChStore::connect(&url).unwrap();
    for sql in [
        "DROP TABLE tapedeck_migrations",
        "CREATE TABLE tapedeck_migrations (version UInt32, name String, \
         applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version",
        "INSERT INTO tapedeck_migrations (version, name) VALUES (1, 'event store')",
        "ALTER TABLE events ADD COLUMN packed String AFTER payload",
    ] {
        store.execute(sql).unwrap();
    }
    store
        .execute(
            "INSERT INTO events (stream_key, seq, event_id, event_type, occurred_at_ns, \
             ingested_at_ns, payload, packed, append_id) \
             VALUES ('md:old', 1, 'x', 'quote', 1704153600000000000, 0, '{}', 'rec', 'a')",
        )
        .unwrap();
    let e = ChStore::connect(&url).unwrap_err().to_string();
    assert!(e.contains("at migration 1, this tapedeck needs 2"), "{e}");
    assert_eq!(migrate(&url).unwrap(), vec![2]);
    let store = ChStore::connect(&url).unwrap();
    let batch = quotes("md:v2", 1, 10, 500);
    assert_eq!(store.append(&batch).unwrap().appended(), 10);
    assert_eq!(read_all(&store, "md:v2"), batch);
    assert_eq!(count(&store, "SELECT count() FROM events"), 11);
}

#[test]
fn a_server_that_is_down_is_a_clear_error_naming_the_url() {
    // Needs no server: nothing listens on port 1.
    let url = "clickhouse://127.0.0.1:1/nowhere";
    let e = ChStore::connect(url).unwrap_err().to_string();
    assert!(e.contains(url) && e.contains("cannot connect"), "{e}");
    let o = tapedeck(&["replay", "--store", url, "--projector", guests::BOOK]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(url), "{stderr}");
    let o = tapedeck(&["migrate", "--store", url]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn retention_drops_expired_day_partitions_only_when_told() {
    let Some(server) = server() else { return };
    let url = db(&server, "retention");
    let store = ChStore::connect(&url).unwrap();
    // Three days of quotes (market data) and a fill (audit) on the first.
    let day = 86_400_000_000_000;
    let mut events = Vec::new();
    for d in 0..3 {
        let mut q = quote("md:ret", d + 1, 100);
        q.occurred_at = T0 + d as i64 * day;
        events.push(q);
    }
    store.append(&events).unwrap();
    let mut f = mixed("orders:ret");
    f.truncate(5);
    store.append(&f).unwrap();
    // As of 2024-04-01, 90 days keep 2024-01-02 onwards: nothing to drop.
    let r = apply_retention(&store, RetentionPolicy::DEFAULTS, "2024-04-01", true).unwrap();
    assert!(r.expired.is_empty(), "{r:?}");
    // As of 2024-04-02, market data of 2024-01-02 is past retention; fills are not.
    let r = apply_retention(&store, RetentionPolicy::DEFAULTS, "2024-04-02", false).unwrap();
    let names: Vec<String> = r
        .expired
        .iter()
        .map(|x| format!("{}.{}", x.table, x.partition))
        .collect();
    assert_eq!(names, ["market_data.2024-01-02"]);
    assert_eq!(count(&store, "SELECT count() FROM market_data"), 5);
    // The CLI: a dry run by default, then --execute.
    let cli = |extra: &[&str]| {
        let mut a = vec![
            "retention",
            "apply",
            "--store",
            &url,
            "--as-of",
            "2024-04-02",
        ];
        a.extend(extra);
        let o = tapedeck(&a);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let dry = cli(&[]);
    assert!(dry.contains("would drop market_data.2024-01-02"), "{dry}");
    assert_eq!(count(&store, "SELECT count() FROM market_data"), 5);
    assert!(cli(&["--execute"]).contains("dropped market_data.2024-01-02"));
    // Left: the quotes of the two later days (the first day's quote, trade and book are gone).
    assert_eq!(count(&store, "SELECT count() FROM market_data"), 2);
    assert_eq!(count(&store, "SELECT count() FROM fills"), 1);
    assert_eq!(read_all(&store, "md:ret").len(), 3, "the event log is kept");
    let o = tapedeck(&["retention", "apply", "--store", &fixtures_uri()]);
    assert_eq!(o.status.code(), Some(2));
}
