//! The PostgreSQL store against a real PostgreSQL 15: `scripts/pg.sh` starts (or reuses) the
//! server, every test gets a database of its own. Nothing here is skipped without a server:
//! a server that cannot start fails the tests.

use std::path::Path;
use std::sync::{Arc, Barrier, OnceLock};

use sqlx::{AssertSqlSafe, Connection, Row};
use tapedeck::Error;
use tapedeck::event::{Body, Dec, Envelope, LiquidityName, OrderTypeName, SideName, TifName};
use tapedeck::store::postgres::{AppendOptions, recreate_database};
use tapedeck::store::{EventSource, PgStore, SeqRange, StoredSnapshot};
use tapedeck_test_guests as guests;

use super::{assert_same_run_dirs, fixtures_uri, tapedeck, tmp};

/// The admin URL of the test server: `$TAPEDECK_PG_URL`, else whatever `scripts/pg.sh start`
/// brings up.
fn server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TAPEDECK_PG_URL") {
            return url;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .output()
            .expect("running scripts/pg.sh");
        assert!(
            out.status.success(),
            "scripts/pg.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs one SQL statement against `url`.
fn sql(url: &str, statement: &str) {
    block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    })
}

/// A fresh, empty database `td_<name>`; its URL.
fn empty_db(name: &str) -> String {
    recreate_database(server(), &format!("td_{name}")).unwrap()
}

/// A fresh, migrated database; its URL.
pub fn db(name: &str) -> String {
    let url = empty_db(name);
    PgStore::migrate(&url).unwrap();
    url
}

fn scalar(url: &str, query: &str) -> i64 {
    block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(AssertSqlSafe(query.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get::<i64, _>(0)
    })
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

fn quotes(stream: &str, n: u64, bid0: i64) -> Vec<Envelope> {
    (1..=n).map(|s| quote(stream, s, bid0 + s as i64)).collect()
}

fn read_all(store: &PgStore, stream: &str) -> Vec<Envelope> {
    let mut out = Vec::new();
    store
        .read(stream, SeqRange::ALL, &mut |e| {
            out.push(e);
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn two_writers_racing_on_a_stream_give_one_conflict_a_retry_and_a_gapless_stream() {
    let url = db("race");
    let store = Arc::new(PgStore::connect(&url).unwrap());
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [10_000, 20_000]
        .into_iter()
        .map(|bid0| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let batch = quotes("md:race", 50, bid0);
                barrier.wait();
                let first = store.append("md:race", &batch, AppendOptions::expecting(0));
                (bid0, batch, first)
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let conflicts: Vec<_> = results
        .iter()
        .filter(|r| matches!(r.2, Err(Error::Conflict { .. })))
        .collect();
    assert_eq!(conflicts.len(), 1, "exactly one writer loses the race");
    let (loser_bid0, loser_batch, err) = conflicts[0];
    let Err(Error::Conflict {
        stream,
        expected,
        actual,
    }) = err
    else {
        unreachable!()
    };
    assert_eq!((stream.as_str(), *expected, *actual), ("md:race", 0, 50));
    assert!(
        err.as_ref()
            .unwrap_err()
            .to_string()
            .contains("retry from seq 50")
    );
    // The loser retries from the seq the conflict reported.
    let retry = store
        .append("md:race", loser_batch, AppendOptions::expecting(*actual))
        .unwrap();
    assert_eq!(
        (retry.appended, retry.first_seq, retry.last_seq),
        (50, Some(51), 100)
    );

    let events = read_all(&store, "md:race");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "gapless");
    let bid = |e: &Envelope| match &e.body {
        Body::Quote { bid_px, .. } => bid_px.0.mantissa,
        _ => unreachable!(),
    };
    // The loser's events are 51..=100, in its order.
    assert!(
        events[50..]
            .iter()
            .enumerate()
            .all(|(i, e)| bid(e) == loser_bid0 + i as i64 + 1)
    );
    assert_eq!(scalar(&url, "SELECT last_seq FROM stream_state"), 100);
    assert_eq!(scalar(&url, "SELECT count(*) FROM event_keys"), 100);
}

#[test]
fn an_idempotent_retry_returns_the_stored_ids_and_stores_nothing_twice() {
    let url = db("idem");
    let store = PgStore::connect(&url).unwrap();
    let batch = quotes("md:idem", 10, 100);
    let first = store
        .append("md:idem", &batch, AppendOptions::default())
        .unwrap();
    assert_eq!((first.appended, first.last_seq), (10, 10));
    assert!(first.duplicates.is_empty());

    // The same batch again, with the writer's stale expectation (its commit reply was lost):
    // not a conflict, nothing stored, every event reported with the stored id.
    let again = store
        .append("md:idem", &batch, AppendOptions::expecting(0))
        .unwrap();
    assert_eq!(
        (again.appended, again.first_seq, again.last_seq),
        (0, None, 10)
    );
    let ids: Vec<(String, u64)> = again
        .duplicates
        .iter()
        .map(|d| (d.event_id.clone(), d.seq))
        .collect();
    let stored: Vec<(String, u64)> = batch.iter().map(|e| (e.event_id.clone(), e.seq)).collect();
    assert_eq!(ids, stored);

    // Overlapping: 6..=15 against 1..=10 stores 11..=15 only; a repeat inside a batch counts once.
    let mut overlap: Vec<Envelope> = (6..=15)
        .map(|s| quote("md:idem", s, 100 + s as i64))
        .collect();
    overlap.push(overlap.last().unwrap().clone());
    let o = store
        .append("md:idem", &overlap, AppendOptions::expecting(10))
        .unwrap();
    assert_eq!((o.appended, o.first_seq, o.last_seq), (5, Some(11), 15));
    assert_eq!(
        o.duplicates.iter().map(|d| d.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 10]
    );
    assert_eq!(
        o.duplicates[5].seq, 15,
        "the in-batch repeat points at its first copy"
    );
    assert_eq!(scalar(&url, "SELECT count(*) FROM event_log"), 15);
    // Retried once more, every event points at where it is stored, renumbered ones included.
    let third = store
        .append("md:idem", &overlap, AppendOptions::default())
        .unwrap();
    let stored = read_all(&store, "md:idem");
    let got: Vec<(String, u64)> = third
        .duplicates
        .iter()
        .map(|d| (d.event_id.clone(), d.seq))
        .collect();
    let want: Vec<(String, u64)> = (5..15)
        .chain([14])
        .map(|i| (stored[i].event_id.clone(), stored[i].seq))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        want.iter().map(|w| w.1).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15]
    );

    // A stored event first, then new ones: the new ones' claims are renumbered down onto
    // each other's provisional seqs (the (stream, seq) constraint is checked per statement).
    let tail: Vec<Envelope> = (15..=18)
        .map(|s| quote("md:idem", s, 100 + s as i64))
        .collect();
    let t = store
        .append("md:idem", &tail, AppendOptions::default())
        .unwrap();
    assert_eq!((t.appended, t.first_seq, t.last_seq), (3, Some(16), 18));
    let seqs: Vec<u64> = read_all(&store, "md:idem").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=18).collect::<Vec<_>>());
    assert_eq!(
        scalar(
            &url,
            "SELECT max(seq) FROM event_keys WHERE stream_key = 'md:idem'"
        ),
        18
    );

    // A stream copied in twice (exact seqs) is a no-op the second time.
    let copy = quotes("md:copied", 20, 500);
    store.append_exact(&copy).unwrap();
    let twice = store.append_exact(&copy).unwrap();
    assert_eq!(twice[0].appended, 0);
    assert_eq!(twice[0].duplicates.len(), 20);
    assert_eq!(read_all(&store, "md:copied"), copy);
}

fn order_events(stream: &str, first_seq: u64, coid: u64, trade0: u64) -> Vec<Envelope> {
    let ev = |i: u64, body: Body| {
        let mut e = Envelope::new(
            stream,
            first_seq + i,
            T0 + (first_seq + i) as i64,
            Some("BTCUSDT"),
            body,
        );
        e.tenancy.tenant_id = Some("acme".into());
        e.correlation.trace_id = Some(format!("trace-{coid}"));
        e
    };
    let fill = |qty: i64, trade_id: u64, is_final: bool| Body::Fill {
        client_order_id: coid,
        trade_id,
        side: SideName::Buy,
        liquidity: Some(LiquidityName::Taker),
        is_final,
        price: Dec::new(6_500_010, 2),
        qty: Dec::new(qty, 1),
        fee: Dec::new(3, 2),
    };
    vec![
        ev(
            0,
            Body::OrderSubmitted {
                client_order_id: coid,
                side: SideName::Buy,
                order_type: OrderTypeName::Limit,
                tif: TifName::Gtc,
                price: Some(Dec::new(6_500_010, 2)),
                qty: Dec::new(10, 1),
            },
        ),
        ev(
            1,
            Body::OrderAcked {
                client_order_id: coid,
                venue_order_id: 77,
            },
        ),
        ev(2, fill(4, trade0, false)),
        ev(3, fill(6, trade0 + 1, true)),
        ev(
            4,
            Body::Position {
                qty: Dec::new(10, 1),
                avg_price: Dec::new(6_500_010, 2),
                realized_pnl: Dec::new(0, 0),
            },
        ),
        ev(
            5,
            Body::Balance {
                total: Dec::new(100_000, 2),
                free: Dec::new(35_000, 2),
                locked: Dec::new(0, 0),
            },
        ),
    ]
}

#[test]
fn append_updates_projections_and_commits_its_snapshot_in_one_transaction() {
    let url = db("tx");
    let store = PgStore::connect(&url).unwrap();
    let snap = StoredSnapshot {
        stream: "exec:tx".into(),
        seq: 6,
        projector: "positions".into(),
        state: serde_json::json!({"positions": {"BTCUSDT": {"qty": 1.0, "avg_price": 65000.1}}}),
        guest_snapshot: None,
    };
    let o = store
        .append(
            "exec:tx",
            &order_events("exec:tx", 1, 1, 500),
            AppendOptions::expecting(0).with_snapshot(&snap),
        )
        .unwrap();
    assert_eq!(o.appended, 6);
    let order = |q: &str| scalar(&url, &format!("SELECT ({q})::bigint FROM orders_current"));
    assert_eq!(order("CASE WHEN status = 'filled' THEN 1 END"), 1);
    assert_eq!(order("filled_qty * 10"), 10);
    assert_eq!(order("venue_order_id"), 77);
    assert_eq!(
        scalar(&url, "SELECT count(*) FROM fills WHERE tenant_id = 'acme'"),
        2
    );
    assert_eq!(
        scalar(&url, "SELECT (qty * 10)::bigint FROM positions_current"),
        10
    );
    assert_eq!(
        scalar(&url, "SELECT (free * 100)::bigint FROM balances_current"),
        35_000
    );
    assert_eq!(store.snapshots("exec:tx").unwrap(), vec![snap.clone()]);

    // A fill recorded again under another event (a reconnect replaying the venue's feed) is a
    // new event but not a second fill: fills are unique by (tenant, exchange trade id).
    let mut again = order_events("exec:tx", 7, 1, 500)[3].clone();
    again.occurred_at += 1;
    store
        .append("exec:tx", &[again], AppendOptions::default())
        .unwrap();
    assert_eq!(scalar(&url, "SELECT count(*) FROM fills"), 2);
    assert_eq!(order("filled_qty * 10"), 10);

    // A batch whose snapshot cannot be stored leaves nothing behind: no events, no
    // projection rows, the stream where it was.
    let bad = StoredSnapshot { seq: 99, ..snap };
    let err = store
        .append(
            "exec:tx",
            &order_events("exec:tx", 8, 2, 900),
            AppendOptions::expecting(7).with_snapshot(&bad),
        )
        .unwrap_err();
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(scalar(&url, "SELECT count(*) FROM event_log"), 7);
    assert_eq!(scalar(&url, "SELECT last_seq FROM stream_state"), 7);
    assert_eq!(scalar(&url, "SELECT count(*) FROM orders_current"), 1);
    assert_eq!(scalar(&url, "SELECT count(*) FROM fills"), 2);
    assert_eq!(scalar(&url, "SELECT count(*) FROM event_keys"), 7);
}

#[test]
fn bad_input_is_refused_with_its_line_and_nothing_half_written() {
    let url = db("bad");
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let good: Vec<String> = quotes("md:bad", 3, 100)
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let cases = [
        // A number where the decimal string goes.
        (
            good[2].replace("\"bid_px\":\"1.03\"", "\"bid_px\":true"),
            "invalid type: boolean",
        ),
        // An event type nobody knows.
        (good[2].replace("\"quote\"", "\"quote_v2\""), "quote_v2"),
    ];
    for (i, (bad_line, what)) in cases.iter().enumerate() {
        assert_ne!(bad_line, &good[2], "the case must change the line");
        let f = dir.join(format!("events{i}.jsonl"));
        std::fs::write(&f, format!("{}\n{}\n{bad_line}\n", good[0], good[1])).unwrap();
        let out = tapedeck(&[
            "events",
            "append",
            "--store",
            &url,
            "--file",
            f.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("events{i}.jsonl:3")), "{stderr}");
        assert!(stderr.contains(what), "{stderr}");
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert_eq!(scalar(&url, "SELECT count(*) FROM event_log"), 0);
        assert_eq!(scalar(&url, "SELECT count(*) FROM stream_state"), 0);
    }
    // The good file goes in, and again is a no-op.
    let f = dir.join("good.jsonl");
    std::fs::write(&f, good.join("\n")).unwrap();
    for expect in ["3 events stored, 0 already", "0 events stored, 3 already"] {
        let out = tapedeck(&[
            "events",
            "append",
            "--store",
            &url,
            "--file",
            f.to_str().unwrap(),
        ]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(expect));
    }

    // The database refuses what bypasses the harness, too.
    let refused = block_on(async {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO event_log SELECT 'x', stream_key, 99, 'bogus', instrument, occurred_at_ns,
                 ingested_at_ns, ingested_at, tenant_id, owner_id, workspace_id, project_id,
                 trace_id, causation_id, command_id, workflow_id, 'k', payload, packed
             FROM event_log LIMIT 1",
        )
        .execute(&mut c)
        .await
        .unwrap_err()
        .to_string()
    });
    assert!(refused.contains("event_log_event_type_check"), "{refused}");

    // A payload damaged in the database is an error naming its stream and seq, not a silent
    // skip.
    sql(
        &url,
        "UPDATE event_log SET payload = jsonb_set(payload, '{ask_qty}', 'false') WHERE seq = 2",
    );
    let store = PgStore::connect(&url).unwrap();
    let err = store
        .read("md:bad", SeqRange::ALL, &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("stream md:bad seq 2"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn partition_coverage_is_reported_and_created() {
    let url = db("parts");
    let check = |months: &str| {
        let out = tapedeck(&[
            "partitions",
            "check",
            "--store",
            &url,
            "--months-ahead",
            months,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let missing = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["present"] == false)
            .count();
        (out.status.code(), v.as_array().unwrap().len(), missing)
    };
    assert_eq!(
        check("2"),
        (Some(1), 3, 3),
        "a fresh store has no partitions ahead"
    );
    let out = tapedeck(&[
        "partitions",
        "create",
        "--store",
        &url,
        "--months-ahead",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(check("2"), (Some(0), 3, 0));
    assert_eq!(check("4"), (Some(1), 5, 2), "short by two months");
    let text = tapedeck(&[
        "partitions",
        "check",
        "--store",
        &url,
        "--months-ahead",
        "4",
    ]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(stdout.matches("MISSING").count(), 2, "{stdout}");
    assert!(stdout.contains("tapedeck partitions create"), "{stdout}");
    // Creating again changes nothing.
    tapedeck(&[
        "partitions",
        "create",
        "--store",
        &url,
        "--months-ahead",
        "2",
    ]);
    assert_eq!(check("2"), (Some(0), 3, 0));
    // An unmigrated database says what to do, and so does one migrated by a newer tapedeck.
    let bare = empty_db("parts_bare");
    let out = tapedeck(&["partitions", "check", "--store", &bare]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `tapedeck migrate --store"));
    sql(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    );
    let out = tapedeck(&["streams", "--store", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("migration 9999, newer than this tapedeck knows"),
        "{stderr}"
    );
}

fn sorted_log_lines(store: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for day in std::fs::read_dir(store.join("events")).unwrap() {
        for part in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let text = std::fs::read_to_string(part.unwrap().path()).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

/// Every file under `dir` (relative path, bytes), sorted.
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
fn copy_file_to_postgres_to_file_is_identical() {
    let url = db("copy");
    let back = tmp("copy-back");
    let run = |args: &[&str]| {
        let out = tapedeck(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let fixtures = fixtures_uri();
    let out = run(&["copy", "--from", &fixtures, "--to", &url]);
    assert!(
        out.contains("6 streams: 3600 events, 54 snapshots"),
        "{out}"
    );
    // Again: the same count read, nothing stored twice.
    run(&["copy", "--from", &fixtures, "--to", &url]);
    assert_eq!(scalar(&url, "SELECT count(*) FROM event_log"), 3600);
    run(&["copy", "--from", &url, "--to", back.to_str().unwrap()]);

    let root = Path::new(&fixtures);
    assert_eq!(sorted_log_lines(root), sorted_log_lines(&back));
    assert_eq!(
        dir_bytes(&root.join("snapshots")),
        dir_bytes(&back.join("snapshots"))
    );
    let streams = |uri: &str| run(&["streams", "--store", uri, "--json"]);
    assert_eq!(streams(&fixtures), streams(&url));
    assert_eq!(streams(&fixtures), streams(back.to_str().unwrap()));
    // Searches agree between the stores (PostgreSQL answers in SQL, files by scanning).
    let search = |uri: &str| {
        run(&[
            "events",
            "search",
            "--store",
            uri,
            "--type",
            "fill",
            "--contains",
            r#"{"side":"buy","is_final":true}"#,
            "--json",
            "--limit",
            "1000",
        ])
    };
    let found = search(&url);
    assert!(found.lines().count() > 50, "{found}");
    assert_eq!(found, search(&fixtures));
    let first: Envelope = serde_json::from_str(found.lines().next().unwrap()).unwrap();
    let seq = first.seq.to_string();
    for uri in [&url, &fixtures] {
        let by_id = run(&["events", "show", "--store", uri, &first.event_id]);
        let by_seq = run(&[
            "events",
            "show",
            "--store",
            uri,
            "--stream",
            &first.stream_key,
            "--seq",
            &seq,
        ]);
        assert_eq!(serde_json::from_str::<Envelope>(&by_id).unwrap(), first);
        assert_eq!(by_id, by_seq);
        let traced = run(&[
            "events",
            "list",
            "--store",
            uri,
            "--stream",
            "md:sim:SYM2",
            "--from-seq",
            "590",
            "--json",
        ]);
        assert_eq!(traced.lines().count(), 11, "{traced}");
    }
    let missing = tapedeck(&["events", "show", "--store", &url, "01NOSUCHEVENT"]);
    assert_eq!(missing.status.code(), Some(1));
    std::fs::remove_dir_all(back).unwrap();
}

#[test]
fn replay_regress_and_snapshot_checks_from_postgres_match_the_file_store() {
    let url = db("conform");
    let fixtures = fixtures_uri();
    assert_eq!(
        tapedeck(&["copy", "--from", &fixtures, "--to", &url])
            .status
            .code(),
        Some(0)
    );
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
        let dirs: Vec<_> = [&fixtures, &url]
            .into_iter()
            .map(|store| {
                let out = tmp(&format!(
                    "{name}-{}",
                    if store == &url { "pg" } else { "file" }
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
        // The run card and report name their store; apart from that, byte for byte.
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
    // Snapshot tests: accepted from the file store, they check clean against PostgreSQL.
    let snaps = tmp("snaps");
    let snaps = snaps.to_str().unwrap();
    let snapshot = |store: &str, mode: &str| {
        tapedeck(&[
            "snapshot",
            "--store",
            store,
            "--projector",
            guests::ORDERS,
            "--every",
            "150",
            "--snapshots",
            snaps,
            mode,
        ])
    };
    assert_eq!(snapshot(&fixtures, "--accept").status.code(), Some(0));
    let files = std::fs::read_dir(snaps).unwrap().count();
    assert_eq!(files, 6 * 4, "every 150 of 600 events, 6 streams");
    let check = snapshot(&url, "--check");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(
        std::fs::read_dir(snaps).unwrap().count(),
        files,
        "no .snap.new"
    );
    std::fs::remove_dir_all(snaps).unwrap();
}

#[test]
fn reads_touch_only_the_partitions_that_hold_the_stream() {
    let url = db("prune");
    let store = PgStore::connect(&url).unwrap();
    let month = |stream: &str, ingested: i64| {
        let mut v = quotes(stream, 100, 100);
        for e in &mut v {
            e.ingested_at = ingested + e.seq as i64;
        }
        v
    };
    let (jan, mar) = (T0, T0 + 60 * 86_400 * 1_000_000_000); // 2024-01-02, 2024-03-02
    store.append_exact(&month("md:jan", jan)).unwrap();
    store.append_exact(&month("md:mar", mar)).unwrap();
    // Another session holds March exclusively: a read that opened that partition would wait.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let url = url.clone();
        std::thread::spawn(move || {
            block_on(async {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                sqlx::query("LOCK TABLE event_log_2024_03 IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                locked_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                tx.rollback().await.unwrap();
            })
        })
    };
    locked_rx.recv().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let store = Arc::new(store);
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            store
                .read_records("md:jan", SeqRange { from: 40, to: 60 }, &mut |_, _, _| {
                    n += 1;
                    Ok(())
                })
                .unwrap();
            let mut m = 0;
            store
                .read("md:jan", SeqRange::ALL, &mut |_| {
                    m += 1;
                    Ok(())
                })
                .unwrap();
            done_tx.send((n, m)).unwrap();
        })
    };
    let got = done_rx.recv_timeout(std::time::Duration::from_secs(20));
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    reader.join().unwrap();
    assert_eq!(
        got.expect("reading a January stream waited for the March partition"),
        (21, 100)
    );
    // And the March stream reads once the lock is gone.
    assert_eq!(read_all(&store, "md:mar").len(), 100);
    assert_eq!(
        scalar(
            &url,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_log'::regclass"
        ),
        2,
        "one partition per month written"
    );
}

#[test]
fn orders_current_agrees_with_the_orders_projector() {
    let url = db("orders_proj");
    // Small batches, so orders live across many append transactions.
    let out = tapedeck(&[
        "copy",
        "--from",
        &fixtures_uri(),
        "--to",
        &url,
        "--batch",
        "37",
    ]);
    assert_eq!(out.status.code(), Some(0));
    for stream in ["exec:sim:SYM1", "exec:sim:SYM2", "exec:sim:SYM3"] {
        let out = tapedeck(&[
            "state",
            "--store",
            &fixtures_uri(),
            "--projector",
            guests::ORDERS,
            "--stream",
            stream,
        ]);
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(state["anomalies"], serde_json::json!([]), "{stream}");
        let expected: Vec<String> = state["orders"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, o)| {
                format!(
                    "{id} {} {} {} {} {} {}",
                    o["status"].as_str().unwrap(),
                    o["side"].as_str().unwrap(),
                    o["qty"],
                    o["filled_qty"],
                    o["venue_order_id"],
                    o["last_seq"]
                )
            })
            .collect();
        let rows = block_on(async {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(
                "SELECT client_order_id::text, status, side, qty::float8, filled_qty::float8,
                     venue_order_id, last_seq
                 FROM orders_current WHERE stream_key = $1 ORDER BY client_order_id::text",
            )
            .bind(stream)
            .fetch_all(&mut c)
            .await
            .unwrap()
        });
        let actual: Vec<String> = rows
            .iter()
            .map(|r| {
                let f = |v: f64| serde_json::json!(v).to_string();
                format!(
                    "{} {} {} {} {} {} {}",
                    r.get::<String, _>(0),
                    r.get::<String, _>(1),
                    r.get::<String, _>(2),
                    f(r.get(3)),
                    f(r.get(4)),
                    r.get::<Option<i64>, _>(5)
                        .map_or("null".into(), |v| v.to_string()),
                    r.get::<i64, _>(6)
                )
            })
            .collect();
        assert!(expected.len() > 100, "{stream}: {}", expected.len());
        assert_eq!(actual, expected, "{stream}");
    }
}

#[test]
fn stream_keys_with_quotes_backslashes_and_like_wildcards_read_back_exactly() {
    let url = db("keys");
    let store = PgStore::connect(&url).unwrap();
    let keys = [r"md:o'brien\x", "md:100%_a", "md:100x_a"];
    for (n, key) in keys.iter().enumerate() {
        store.append_exact(&quotes(key, 5 + n as u64, 100)).unwrap();
    }
    for (n, key) in keys.iter().enumerate() {
        let mut records = 0;
        store
            .read_records(key, SeqRange::ALL, &mut |_, _, _| {
                records += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(records, 5 + n, "{key}");
        assert_eq!(read_all(&store, key).len(), 5 + n, "{key}");
        let q = tapedeck::store::EventQuery {
            stream: Some(key.to_string()),
            limit: 100,
            ..Default::default()
        };
        let mut listed = 0;
        store
            .query(&q, &mut |e| {
                assert_eq!(e.stream_key, *key);
                listed += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(listed, 5 + n, "{key}: `%` and `_` are not wildcards");
    }
}

#[test]
fn a_binance_import_into_postgres_equals_the_file_import_and_quarantines_in_a_table() {
    use super::binance::{capture, capture_lines, write_lines};
    let Some(capture) = capture() else { return };
    let mut lines = capture_lines(&capture);
    lines.truncate(3000);
    lines.insert(100, "no timestamp here".into());
    let dir = tmp("import-src");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("with-garbage.jsonl");
    write_lines(&path, &lines);
    let url = db("import");
    let file_store = tmp("import-file");
    for store in [url.as_str(), file_store.to_str().unwrap()] {
        let out = tapedeck(&[
            "import",
            "binance",
            path.to_str().unwrap(),
            "--store",
            store,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // A quarantined line makes the import exit 1 (nothing is lost, but look at it).
        assert_eq!(
            out.status.code(),
            Some(1),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 lines quarantined in"), "{stdout}");
    }
    let list = |store: &str| {
        let out = tapedeck(&[
            "events", "search", "--store", store, "--json", "--limit", "1000000",
        ]);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let from_pg = list(&url);
    assert!(
        from_pg.lines().count() > 1000,
        "{}",
        from_pg.lines().count()
    );
    assert_eq!(from_pg, list(file_store.to_str().unwrap()));
    // Importing the same capture again adds nothing (its lines are at or before what the
    // stream holds); the garbage line is quarantined again, so the exit code is still 1.
    let again = tapedeck(&["import", "binance", path.to_str().unwrap(), "--store", &url]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("3000 lines skipped"), "{stdout}");
    assert_eq!(list(&url), from_pg);
    let quarantined = block_on(async {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, String>(
            "SELECT record::text FROM quarantine WHERE source = 'import-binance'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap()
    });
    // Once per import: a line that never parsed has no time to tell it was seen before.
    assert_eq!(quarantined.len(), 2);
    assert_eq!(quarantined[0], quarantined[1]);
    let rec: serde_json::Value = serde_json::from_str(&quarantined[0]).unwrap();
    assert_eq!(rec["line"], 101);
    assert_eq!(rec["text"], "no timestamp here");
    assert!(
        rec["file"]
            .as_str()
            .unwrap()
            .ends_with("with-garbage.jsonl")
    );
    for d in [dir, file_store] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
