//! The repo's projectors under snapshot tests over every fixture stream (the snapshots are in
//! `snapshots/` beside this file; CI runs with INSTA_UPDATE=no), and the gate itself: a
//! different projector gives pending snapshots and a failing check at the right path, in files
//! insta's own parser reads. Snapshot files are named by `tapedeck::names::file_name`, and those
//! named by the old rule are recognised and renamed.

use std::path::{Path, PathBuf};

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
    assert!(stdout.contains("at .books.SYM1.asks[1]: "), "{stdout}");
    assert!(
        stdout
            .contains("--- book__md%3Asim%3ASYM1@600.snap\n+++ book__md%3Asim%3ASYM1@600.snap.new"),
        "{stdout}"
    );
    // Both files are what insta reads: the same header fields, and contents that differ.
    let old = insta::Snapshot::from_file(&dir.join("book__md%3Asim%3ASYM1@600.snap")).unwrap();
    let new = insta::Snapshot::from_file(&dir.join("book__md%3Asim%3ASYM1@600.snap.new")).unwrap();
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
    assert!(parsed["books"]["SYM1"]["asks"].as_array().unwrap().len() > 1);
    assert_ne!(a, b);
    std::fs::remove_dir_all(dir).unwrap();
}

fn stdout(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A file store with one event in each of `keys`.
fn store_with(name: &str, keys: &[&str]) -> PathBuf {
    use tapedeck::event::{Body, Envelope};
    use tapedeck::store::{EventSink, FileStore, FileStoreOptions};
    let dir = tmp(name);
    let mut store = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    for (i, key) in keys.iter().enumerate() {
        store
            .append(&[Envelope::new(
                key,
                1,
                1_704_067_200_000_000_000 + i as i64,
                Some("SYM1"),
                Body::OrderCancelled { client_order_id: 1 },
            )])
            .unwrap();
    }
    dir
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

// See: the old `-` rule gave `md:a:B` and `md/a/B` one `.snap` file, the second overwriting the
// first.
#[test]
fn streams_the_old_rule_merged_get_two_snap_files() {
    let store = store_with("merged-store", &["md:a:B", "md/a/B"]);
    let dir = tmp("merged");
    let o = tapedeck(&[
        "snapshot",
        "--store",
        store.to_str().unwrap(),
        "--projector",
        guests::POSITIONS,
        "--snapshots",
        dir.to_str().unwrap(),
        "--accept",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        files(&dir),
        [
            "positions__md%2Fa%2FB@1.snap",
            "positions__md%3Aa%3AB@1.snap"
        ]
    );
    for (file, key) in [
        ("positions__md%2Fa%2FB@1.snap", "md/a/B"),
        ("positions__md%3Aa%3AB@1.snap", "md:a:B"),
    ] {
        let snap = insta::Snapshot::from_file(&dir.join(file)).unwrap();
        assert_eq!(
            snap.metadata().expression(),
            Some(format!("positions state of {key} at seq 1").as_str())
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(store).unwrap();
}

#[test]
fn old_named_snapshots_are_checked_and_then_renamed() {
    let dir = tmp("old-names");
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
    assert_eq!(snap(&["--accept"]).status.code(), Some(0));
    // As the old rule named them.
    for n in 1..=3 {
        std::fs::rename(
            dir.join(format!("book__md%3Asim%3ASYM{n}@600.snap")),
            dir.join(format!("book__md-sim-SYM{n}@600.snap")),
        )
        .unwrap();
    }
    let o = snap(&["--check"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("3 matched, 0 changed, 0 pending"), "{out}");
    assert!(
        out.contains(
            "book__md-sim-SYM1@600.snap: under its old name (now book__md%3Asim%3ASYM1@600.snap); `tapedeck snapshot migrate-names"
        ),
        "{out}"
    );
    // A difference is written beside the old-named file it differs from.
    let o = snap(&["--check", "--config", r#"{"depth": 1}"#]);
    assert_eq!(o.status.code(), Some(1));
    assert!(dir.join("book__md-sim-SYM1@600.snap.new").exists());

    let migrate = |extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "migrate-names",
            "--snapshots",
            d,
            "--store",
            &store,
        ];
        args.extend_from_slice(extra);
        tapedeck(&args)
    };
    let before = files(&dir);
    let o = migrate(&["--dry-run"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("would rename book__md-sim-SYM1@600.snap -> book__md%3Asim%3ASYM1@600.snap"),
        "{out}"
    );
    assert_eq!(files(&dir), before, "a dry run renames nothing");
    let o = migrate(&["--projector", "book"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "renamed book__md-sim-SYM1@600.snap.new -> book__md%3Asim%3ASYM1@600.snap.new"
        ),
        "{out}"
    );
    let news = before.iter().filter(|f| f.ends_with(".snap.new")).count();
    assert!(news >= 1);
    assert!(
        out.contains(&format!("{} renamed, 0 already named, 0 left", 3 + news)),
        "{out}"
    );
    let mut want: Vec<String> = before
        .iter()
        .map(|f| f.replace("md-sim-", "md%3Asim%3A"))
        .collect();
    want.sort();
    assert_eq!(files(&dir), want);
    let o = snap(&["--check"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("old name"), "{out}");
    // Run again: nothing left to rename.
    let out = stdout(&migrate(&[]));
    assert!(out.contains("0 renamed, 3 already named"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn migrate_names_refuses_an_old_name_two_streams_share() {
    let store = store_with("shared-store", &["md:a:B", "md/a/B"]);
    let dir = tmp("shared");
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("positions__md-a-B@1.snap");
    std::fs::write(
        &old,
        "---\nsource: old\nexpression: \"positions state of md:a:B at seq 1\"\n---\n{}\n",
    )
    .unwrap();
    let o = tapedeck(&[
        "snapshot",
        "migrate-names",
        "--snapshots",
        dir.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "left positions__md-a-B@1.snap: it is the old name of 2 streams (md/a/B, md:a:B)"
        ),
        "{out}"
    );
    assert!(out.contains("0 renamed, 0 already named, 1 left"), "{out}");
    assert!(old.exists(), "left as it was");
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(store).unwrap();
}
