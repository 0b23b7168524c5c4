//! The repo's projectors under snapshot tests over every fixture stream (the snapshots are in
//! `snapshots/` beside this file; CI runs with INSTA_UPDATE=no), and the gate itself: a
//! different projector gives pending snapshots and a failing check at the right path, in files
//! insta's own parser reads.

use super::{fixtures_uri, tapedeck, tmp};

use tapedeck_test_guests as guests;

#[test]
fn positions_projection() {
    tapedeck::assert_projection!(guests::POSITIONS, &fixtures_uri(), "*");
}

#[test]
fn orders_projection() {
    tapedeck::assert_projection!(
        guests::ORDERS,
        &fixtures_uri(),
        "*",
        redactions = [".orders.*.venue_order_id"]
    );
}

#[test]
fn book_projection() {
    tapedeck::assert_projection!(guests::BOOK, &fixtures_uri(), "*");
}

#[test]
fn the_gate_fails_a_different_projector_at_the_right_path() {
    let dir = tmp("gate");
    let d = dir.to_str().unwrap();
    let store = fixtures_uri();
    let snap = |extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "--store",
            &store,
            "--projector",
            guests::BOOK,
            "--streams",
            "md:*",
            "--snapshots",
            d,
        ];
        args.extend_from_slice(extra);
        tapedeck(&args)
    };
    // Nothing accepted yet: every snapshot is pending, and the check fails.
    let o = snap(&["--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 matched, 0 changed, 3 pending"));
    assert_eq!(snap(&["--accept"]).status.code(), Some(0));
    assert_eq!(
        snap(&["--check"]).status.code(),
        Some(0),
        "accepted snapshots match"
    );
    // The same projector keeping only the best level: a deliberate change.
    let o = snap(&["--check", "--config", r#"{"depth": 1}"#]);
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let id = tapedeck::event::instrument_id("SYM1");
    assert!(
        stdout.contains(&format!("at .books.{id}.asks[1]: ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("--- book__md-sim-SYM1@600.snap\n+++ book__md-sim-SYM1@600.snap.new"),
        "{stdout}"
    );
    // Both files are what insta reads: the same header fields, and contents that differ.
    let old = insta::Snapshot::from_file(&dir.join("book__md-sim-SYM1@600.snap")).unwrap();
    let new = insta::Snapshot::from_file(&dir.join("book__md-sim-SYM1@600.snap.new")).unwrap();
    assert_eq!(
        old.metadata().expression(),
        Some("book state of md:sim:SYM1 at seq 600")
    );
    assert!(
        old.metadata()
            .source()
            .unwrap()
            .starts_with("tapedeck snapshot")
    );
    assert_eq!(old.metadata().expression(), new.metadata().expression());
    let (a, b) = (
        old.as_text().unwrap().to_string(),
        new.as_text().unwrap().to_string(),
    );
    let parsed: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert!(
        parsed["books"][id.to_string()]["asks"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );
    assert_ne!(a, b);
    std::fs::remove_dir_all(dir).unwrap();
}
