//! The file store's Parquet index and the `EventSource` seam: the same replay from the log,
//! from the index, and from the memory store gives the same report; a stale index is not used.

use std::path::PathBuf;

use tapedeck::event::{Body, Envelope};
use tapedeck::replay::{Plugin, ReplayOptions, ReplayReport, replay};
use tapedeck::store::{
    EventSink, EventSource, FileStore, FileStoreOptions, MemoryStore, SeqRange, index,
};
use tapedeck_test_guests as guests;

use super::{fixtures, load, rt};

fn copy_of_fixtures(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tapedeck-index-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixtures())
        .arg(&d)
        .status()
        .unwrap();
    assert!(status.success());
    d
}

fn plugins() -> Vec<Plugin> {
    [
        guests::BOOK,
        guests::POSITIONS,
        guests::ORDERS,
        guests::EMA_CROSS,
    ]
    .into_iter()
    .map(|p| Plugin::new(load(p), ""))
    .collect()
}

/// Everything a report says, as comparable JSON (outputs included).
fn fingerprint(r: &ReplayReport) -> serde_json::Value {
    let outputs: Vec<_> = r
        .streams
        .iter()
        .map(|s| serde_json::to_value(&s.outputs).unwrap())
        .collect();
    serde_json::json!({ "report": serde_json::to_value(r).unwrap(), "outputs": outputs })
}

fn run(source: &dyn EventSource) -> ReplayReport {
    replay(
        rt(),
        source,
        &plugins(),
        &ReplayOptions {
            keep_outputs: true,
            batch: 100,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn log_index_and_memory_sources_give_the_same_report() {
    let dir = copy_of_fixtures("conformance");
    let from_log = run(&FileStore::open(&dir).unwrap());
    let summary = index::rebuild(&dir, None).unwrap();
    assert_eq!(summary.rows, 3600);
    let store = FileStore::open(&dir).unwrap();
    assert!(store.fresh_index().unwrap().is_some());
    assert_eq!(
        store.streams().unwrap(),
        FileStore::open(fixtures()).unwrap().streams().unwrap(),
        "stream summaries from the index = from the log"
    );
    let from_index = run(&store);
    // The same events, copied into the memory store.
    let mut mem = MemoryStore::new();
    for s in store.streams().unwrap() {
        let mut evs = Vec::new();
        store
            .read(&s.key, SeqRange::ALL, &mut |e| {
                evs.push(e);
                Ok(())
            })
            .unwrap();
        mem.append(&evs).unwrap();
        for snap in store.snapshots(&s.key).unwrap() {
            mem.put_snapshot(&snap).unwrap();
        }
    }
    let from_memory = run(&mem);
    assert!(from_log.is_clean());
    assert!(
        from_log
            .streams
            .iter()
            .any(|s| s.outputs.values().any(|v| !v.is_empty())),
        "ema-cross decided something"
    );
    assert_eq!(fingerprint(&from_log), fingerprint(&from_index));
    assert_eq!(fingerprint(&from_log), fingerprint(&from_memory));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stale_index_is_not_used_until_rebuilt() {
    let dir = copy_of_fixtures("stale");
    index::rebuild(&dir, None).unwrap();
    let mut store = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    assert!(store.fresh_index().unwrap().is_some());
    // One more event, on a new day: the index no longer covers the log.
    let next = store
        .streams()
        .unwrap()
        .iter()
        .find(|s| s.key == "exec:sim:SYM1")
        .unwrap()
        .last_seq
        + 1;
    let later = 1_704_326_400_000_000_000; // 2024-01-04
    store
        .append(&[Envelope::new(
            "exec:sim:SYM1",
            next,
            later,
            Some("SYM1"),
            Body::OrderCancelled {
                client_order_id: 999,
            },
        )])
        .unwrap();
    assert!(store.fresh_index().unwrap().is_none());
    let mut seqs = Vec::new();
    store
        .read_records(
            "exec:sim:SYM1",
            SeqRange {
                from: next - 1,
                to: u64::MAX,
            },
            &mut |seq, _, _| {
                seqs.push(seq);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(seqs, [next - 1, next], "the log has the new event");
    // Rebuilding only the new day keeps the old one and makes the index fresh again.
    let s = index::rebuild(&dir, Some("2024-01-04")).unwrap();
    assert_eq!(s.days, ["2024-01-04"]);
    let store = FileStore::open(&dir).unwrap();
    let m = store
        .fresh_index()
        .unwrap()
        .expect("fresh after the rebuild");
    assert_eq!(m.days.len(), 2);
    std::fs::remove_dir_all(dir).unwrap();
}
