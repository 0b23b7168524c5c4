//! Bad input at the command line: each gets a clear message and exit 2 (a usage error), or
//! is handled without failing the run; nothing is replayed or written by a refused command.

use std::io::Write;

use super::{fixtures_uri, tapedeck, tmp};
use tapedeck_test_guests as guests;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn refused(args: &[&str], says: &str) {
    let o = tapedeck(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: want {says:?} in: {err}");
}

fn replay_args<'a>(store: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["replay", "--store", store, "--projector", guests::BOOK];
    v.extend_from_slice(extra);
    v
}

#[test]
fn empty_ranges_and_selections_are_refused_not_replayed() {
    let store = fixtures_uri();
    refused(
        &replay_args(&store, &["--from", "200", "--to", "100"]),
        "--from 200 is after --to 100",
    );
    refused(
        &replay_args(
            &store,
            &[
                "--from",
                "2024-01-02T00:10:00Z",
                "--to",
                "2024-01-02T00:00:00Z",
            ],
        ),
        "is after --to 2024-01-02T00:00:00",
    );
    refused(
        &replay_args(&store, &["--streams", "md:nowhere:*"]),
        "no stream in",
    );
}

#[test]
fn impossible_times_and_fees_are_usage_errors() {
    let store = fixtures_uri();
    for t in [
        "2024-02-31T00:00:00Z",
        "2024-08-08T24:00:00Z",
        "2024-08-08T23:60:00Z",
    ] {
        refused(&replay_args(&store, &["--from", t]), "valid UTC time");
    }
    for fee in ["NaN", "inf", "1e9", "-20000"] {
        refused(
            &[
                "regress",
                "--store",
                &store,
                "--baseline",
                guests::EMA_CROSS,
                "--candidate",
                guests::EMA_CROSS,
                "--taker-fee-bps",
                fee,
            ],
            "is not a fee",
        );
    }
    refused(
        &[
            "regress",
            "--store",
            &store,
            "--baseline",
            guests::EMA_CROSS,
            "--candidate",
            guests::EMA_CROSS,
            "--latency-us=-5",
        ],
        "--latency-us",
    );
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `tapedeck streams | head -0`: the reader is gone before the first line is written.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .args(["streams", "--store", &fixtures_uri()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(0), "{err}");
}

#[test]
fn jobs_beyond_the_instance_pool_still_replay_every_stream() {
    // 300 streams, 2 modules, --jobs 300: 600 instances live at once, more than the default
    // pool of 256. Before, the run failed as a whole.
    let dir = tmp("jobs");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("events.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for s in 0..300 {
        for seq in 1..=2u64 {
            let t = 1_704_153_600_000_000_000i64 + (s * 10 + seq as i64) * 1_000_000;
            writeln!(
                f,
                r#"{{"event_id":"01HK3QGM355DWHRS2P{s:03}{seq:05}","stream_key":"md:jobs:S{s:03}","seq":{seq},"occurred_at":{t},"ingested_at":{t},"instrument":"S{s:03}","event_type":"quote","payload":{{"bid_px":"100.0","bid_qty":"1","ask_px":"100.5","ask_qty":"2"}}}}"#
            )
            .unwrap();
        }
    }
    drop(f);
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let o = tapedeck(&[
        "events",
        "append",
        "--store",
        store,
        "--file",
        input.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tapedeck(&[
        "replay",
        "--store",
        store,
        "--jobs",
        "300",
        "--strategy",
        guests::EMA_CROSS,
        "--projector",
        guests::BOOK,
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.matches(", 2 events,").count(), 300, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_postgres_is_reported_at_once_with_its_cause() {
    // Port 1 on loopback: nothing listens, the connection is refused. Before, the pool retried
    // for 30 s and then said only "pool timed out".
    let started = std::time::Instant::now();
    refused(
        &[
            "streams",
            "--store",
            "postgres://tapedeck@127.0.0.1:1/tapedeck",
        ],
        "Connection refused",
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// `n` quote envelopes of `stream` from seq `first`, one JSON line each.
fn quote_lines(stream: &str, first: u64, n: u64) -> String {
    let mut s = String::new();
    for seq in first..first + n {
        let t = 1_704_153_600_000_000_000i64 + seq as i64 * 1_000_000;
        s += &format!(
            r#"{{"event_id":"01HK3QGM355DWHRS2P{:08}","stream_key":"{stream}","seq":{seq},"occurred_at":{t},"ingested_at":{t},"event_type":"quote","payload":{{"bid_px":"100.0","bid_qty":"1","ask_px":"100.5","ask_qty":"2"}}}}"#,
            seq + if stream.ends_with('B') { 50_000_000 } else { 0 }
        );
        s.push('\n');
    }
    s
}

/// Writes `lines` to `dir/name` and runs `tapedeck events append` of it into `dir/store`.
fn append_file(dir: &std::path::Path, name: &str, lines: String) -> std::process::Output {
    let file = dir.join(name);
    std::fs::write(&file, lines).unwrap();
    let store = dir.join("store");
    tapedeck(&[
        "events",
        "append",
        "--store",
        store.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
    ])
}

#[test]
fn events_append_checks_the_whole_file_before_writing_any_batch() {
    // More events than one append batch (8192), so the file is written in several; a gap in
    // the last stream of the file must still write nothing at all.
    let dir = tmp("append");
    std::fs::create_dir_all(&dir).unwrap();
    let lines = quote_lines("md:t:A", 1, 20_000) + &quote_lines("md:t:B", 2, 5);
    let o = append_file(&dir, "bad.jsonl", lines);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.jsonl:20001: stream md:t:B starts at seq 2")
            && err.contains("nothing was written"),
        "{err}"
    );
    let o = tapedeck(&["streams", "--store", dir.join("store").to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(!listed.contains("md:t:"), "nothing written: {listed}");

    let lines = quote_lines("md:t:A", 1, 20_000) + &quote_lines("md:t:B", 1, 5);
    let o = append_file(&dir, "good.jsonl", lines);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.contains("20005 events stored"), "{out}");

    // A seq out of place inside the file is refused with its line.
    let lines = quote_lines("md:t:C", 1, 3) + &quote_lines("md:t:C", 5, 1);
    let o = append_file(&dir, "jumbled.jsonl", lines);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("jumbled.jsonl:4: stream md:t:C seq 5 follows seq 3"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
