//! The `tapedeck` binary itself: exit codes (0 clean, 1 findings, 2 error) and what it writes.

use super::{fixtures_uri, tapedeck, tmp};

use std::path::Path;

use serde_json::Value;
use tapedeck_test_guests as guests;

#[test]
fn replay_of_the_fixtures_is_clean_and_exits_0() {
    let out = tmp("replay");
    let o = tapedeck(&[
        "replay",
        "--store",
        &fixtures_uri(),
        "--projector",
        guests::BOOK,
        "--projector",
        guests::ORDERS,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["clean"], true);
    assert_eq!(summary["events"], 3600);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn regress_fails_on_divergence_with_exit_1_and_writes_the_run_directory() {
    let out = tmp("regress");
    let o = tapedeck(&[
        "regress",
        "--store",
        &fixtures_uri(),
        "--baseline",
        guests::EMA_CROSS,
        "--candidate",
        guests::EMA_CROSS_V2,
        "--fail-on",
        "divergence",
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL: decisions diverge"));
    for f in [
        "summary.json",
        "config.json",
        "report.md",
        "report.html",
        "junit.xml",
        "decisions.parquet",
        "trades.parquet",
        "equity_curve.parquet",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Without the rule the same run passes.
    let o = tapedeck(&[
        "regress",
        "--store",
        &fixtures_uri(),
        "--baseline",
        guests::EMA_CROSS,
        "--candidate",
        guests::EMA_CROSS_V2,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn errors_exit_2_and_say_what_is_wrong() {
    let o = tapedeck(&["streams", "--store", "/nonexistent/store"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/store") && err.contains("tapedeck import"),
        "{err}"
    );
    let o = tapedeck(&[
        "regress",
        "--store",
        &fixtures_uri(),
        "--baseline",
        guests::BOOK,
        "--candidate",
        guests::EMA_CROSS,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a projector, given as a strategy"));
    let o = tapedeck(&[
        "regress",
        "--store",
        &fixtures_uri(),
        "--baseline",
        guests::EMA_CROSS,
        "--candidate",
        guests::EMA_CROSS,
        "--fail-on",
        "pnl-drop",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs a value"));
}

#[test]
fn state_travels_to_a_seq() {
    let o = tapedeck(&[
        "state",
        "--store",
        &fixtures_uri(),
        "--projector",
        guests::POSITIONS,
        "--stream",
        "exec:sim:SYM2",
        "--at",
        "400",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let state: Value = serde_json::from_slice(&o.stdout).unwrap();
    let stored: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(&fixtures_uri())
                .join("snapshots/exec%3Asim%3ASYM2/00000000000000000400.positions.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(state, stored["state"]);
}
