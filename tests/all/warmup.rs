//! `--warmup-check`: ema-cross (its EMAs start at the first price they see) replayed fresh
//! from start points over the first half of each fixture stream converges to the full run's
//! decisions some events later; the CLI prints and writes the answer.

use tapedeck::replay::{Plugin, ReplayOptions, replay};
use tapedeck::warmup::warmup_check;
use tapedeck_test_guests as guests;

use super::{fixtures, fixtures_uri, load, rt, tapedeck, tmp};

#[test]
fn ema_cross_converges_after_its_warm_up() {
    let store = tapedeck::store::FileStore::open(fixtures()).unwrap();
    let plugin = Plugin::new(load(guests::EMA_CROSS), "");
    let opts = ReplayOptions {
        streams: "md:sim:SYM1".into(),
        ..Default::default()
    };
    let r = warmup_check(rt(), &store, &plugin, &opts, 4).unwrap();
    let s = &r.streams[0];
    assert_eq!((s.first_seq, s.last_seq), (1, 600));
    let seqs: Vec<u64> = s.starts.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![75, 150, 225, 300]);
    for p in &s.starts {
        let c = p.converged_at.expect("ema-cross converges");
        // Fresh EMAs decide differently for a while.
        assert!(c > p.seq && p.differing_seqs > 0, "{p:?}");
        assert!(s.converged_from.unwrap() >= c);
    }
    // A start point's replay sees only the events from it.
    let cold = replay(
        rt(),
        &store,
        std::slice::from_ref(&plugin),
        &ReplayOptions {
            cold_start: Some(300),
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(cold.streams[0].events, 301);
}

#[test]
fn the_backtest_command_reports_the_warm_up() {
    let out = tmp("cli");
    let o = tapedeck(&[
        "backtest",
        "--store",
        &fixtures_uri(),
        "--streams",
        "md:sim:SYM1",
        "--strategy",
        guests::EMA_CROSS,
        "--warmup-check",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains(
            "warm-up ema-cross: md:sim:SYM1: decisions independent of the start from seq"
        ),
        "{stdout}"
    );
    let w: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("warmup.json")).unwrap()).unwrap();
    assert_eq!(w[0]["streams"][0]["starts"].as_array().unwrap().len(), 3);
    let o = tapedeck(&[
        "backtest",
        "--store",
        &fixtures_uri(),
        "--strategy",
        guests::EMA_CROSS,
        "--warmup-check",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&out).unwrap();
}

// A shard checks only its own streams (each stream's answer as in the whole run); it panicked
// on the first stream outside it.
#[test]
fn a_shard_checks_its_own_streams() {
    let store = tapedeck::store::FileStore::open(fixtures()).unwrap();
    let plugin = Plugin::new(load(guests::EMA_CROSS), "");
    let whole = warmup_check(rt(), &store, &plugin, &ReplayOptions::default(), 2).unwrap();
    let mut keys = Vec::new();
    for i in 0..2 {
        let opts = ReplayOptions {
            shard: Some(tapedeck::shard::Shard::new(i, 2).unwrap()),
            ..Default::default()
        };
        let r = warmup_check(rt(), &store, &plugin, &opts, 2).unwrap();
        for s in &r.streams {
            let w = whole.streams.iter().find(|w| w.stream == s.stream).unwrap();
            assert_eq!(s.converged_from, w.converged_from, "{}", s.stream);
            keys.push(s.stream.clone());
        }
    }
    keys.sort();
    let mut all: Vec<String> = whole.streams.iter().map(|s| s.stream.clone()).collect();
    all.sort();
    assert_eq!(keys, all);
}
