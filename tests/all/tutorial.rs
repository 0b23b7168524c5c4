//! A strategy author's first hour, outside this repository's workspace: `tapedeck new` crates
//! build with `tapedeck build` as written (no `[profile.guest]` needed, and one of the crate's
//! own wins), their unit tests pass natively, and the modules replay over the fixture store.
//! And the README's tutorial, run as written: its `sh` blocks, in one bash session started at
//! the repository root, with `tapedeck` the binary under test. Not run: `cargo insta review`
//! (interactive) and, when the capture is absent, the import block (saying so).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fixtures_uri, shared_data, shared_dir, tapedeck, tmp};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A command with what an outer cargo sets for its tests removed, so a nested cargo (the
/// guest builds, `cargo test` of a new crate) behaves as in a shell; the target dir is kept.
fn clean(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let cargo_own = k.starts_with("CARGO") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR";
        if cargo_own || k.starts_with("RUSTC") || k == "RUSTFLAGS" || k == "RUSTUP_TOOLCHAIN" {
            cmd.env_remove(&*k);
        }
    }
    cmd
}

/// The `sh` blocks of the README's tutorial section, in order.
fn tutorial_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find("\n## Tutorial")
        .expect("the README has a tutorial");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn stdout_of(out: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_new_crate_builds_anywhere_and_its_own_profile_wins() {
    let dir = tmp("new");
    std::fs::create_dir_all(&dir).unwrap();
    let krate = dir.join("my-strategy");
    let out = tapedeck(&["new", "strategy", "my-strategy", "--path"]);
    assert!(!out.status.success(), "--path wants a value");
    let out = tapedeck(&[
        "new",
        "strategy",
        "my-strategy",
        "--path",
        krate.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout_of(&out));
    for f in ["Cargo.toml", "README.md", "config.json", "src/lib.rs"] {
        assert!(krate.join(f).is_file(), "{f}");
    }
    assert!(
        !std::fs::read_to_string(krate.join("Cargo.toml"))
            .unwrap()
            .lines()
            .any(|l| l.starts_with("[profile")),
        "the crate needs no profile"
    );
    // Writing into it again is refused: nothing is overwritten.
    let again = tapedeck(&["new", "projector", "x", "--path", krate.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", stdout_of(&again));

    // Without a profile: the guest settings (stripped: no debug info in the module).
    let tc = tapedeck_guest_build::detect().unwrap();
    // The shared guest target dir: std and the SDK's dependencies are built for wasm32 there.
    let target = PathBuf::from(tapedeck_test_guests::EMA_CROSS)
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let core = tapedeck_guest_build::build(&tc, &krate, &target).unwrap();
    let has_debug_info = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        bytes.windows(11).any(|w| w == b".debug_info")
    };
    assert!(!has_debug_info(&core), "built stripped");

    // Built by the binary too, and its decisions on the fixture store name the symbol.
    let guests = dir.join("guests");
    let out = clean(&mut Command::new(env!("CARGO_BIN_EXE_tapedeck")))
        .args(["build", krate.to_str().unwrap(), "--out"])
        .arg(&guests)
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout_of(&out));
    let wasm = guests.join("my-strategy.wasm");
    let run = dir.join("regress");
    let out = tapedeck(&[
        "regress",
        "--store",
        &fixtures_uri(),
        "--baseline",
        wasm.to_str().unwrap(),
        "--candidate",
        wasm.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["baseline"]["orders"].as_u64().unwrap() > 0,
        "it trades on the fixture store: {summary:#}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("md:sim:SYM1"), "{report}");

    // Its unit tests, natively.
    let out = clean(&mut Command::new("cargo"))
        .args(["test", "--quiet"])
        .current_dir(&krate)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout_of(&out));

    // A profile of the crate's own wins: here one that keeps debug info.
    let manifest = krate.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[profile.guest]\ninherits = \"release\"\npanic = \"abort\"\ndebug = true\nstrip = false\n");
    std::fs::write(&manifest, text).unwrap();
    let core = tapedeck_guest_build::build(&tc, &krate, &target).unwrap();
    assert!(has_debug_info(&core), "built with the crate's own profile");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_readme_tutorial_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = tutorial_blocks(&readme);
    assert!(blocks.len() >= 7, "{blocks:#?}");
    let capture = shared_data("binance/spot_btcusdt_20240808.gz");
    let mut script = String::from("set -euo pipefail\n");
    for b in &blocks {
        if b.contains("cargo insta review") {
            eprintln!("not run (interactive): {}", b.trim());
            continue;
        }
        if b.contains("tapedeck import") && capture.is_none() {
            // Past the harness's capture, as `shared_data` says why it skips.
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"skipping the tutorial's import (no capture): its later steps use the fixture store\n",
            );
            continue;
        }
        script.push_str(b);
    }
    // Where the tutorial's `mktemp -d` goes, so the test can look inside and clean up.
    let work = tmp("tutorial");
    std::fs::create_dir_all(&work).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tapedeck")).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = clean(&mut Command::new("bash"))
        .arg("-c")
        .arg(&script)
        .current_dir(repo())
        .env("PATH", path)
        .env("TMPDIR", &work)
        .env("TAPEDECK_SHARED_DIR", shared_dir())
        .env(
            "TAPEDECK_CACHE_DIR",
            std::env::temp_dir().join("tapedeck-cli-cache"),
        )
        .output()
        .unwrap();
    let log = stdout_of(&out);
    assert!(
        out.status.success(),
        "the tutorial failed:\n{script}\n{log}"
    );
    assert!(
        log.contains("the projected state changed: review it"),
        "step 5's check fails on the change: {log}"
    );

    let dirs: Vec<PathBuf> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [home] = dirs.as_slice() else {
        panic!("one working directory from mktemp: {dirs:?}");
    };
    let html = std::fs::read_to_string(home.join("regress/report.html")).unwrap();
    assert!(html.contains("First divergences"), "the change shows");
    let symbol = if capture.is_some() { "BTCUSDT" } else { "SYM1" };
    let snaps: Vec<PathBuf> = std::fs::read_dir(home.join("markets/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!snaps.is_empty());
    assert!(
        snaps
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "snap")),
        "everything accepted: {snaps:?}"
    );
    let all: String = snaps
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(all.contains(&format!("\"{symbol}\": {{")), "{all}");
    std::fs::remove_dir_all(&work).unwrap();
}
