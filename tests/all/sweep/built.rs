//! Sweeps on the fixture store: a 2×2 grid ranked as its points' own summaries say, each
//! point rerun identically, the same bytes run for run, bad grids refused naming the key,
//! the explicit-list form, and shards merged into the single process's directory.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tapedeck_test_guests as guests;

use crate::{assert_same_run_dirs, fixtures_uri, tapedeck, tmp};

const GRID: &str = "[base]\nwarmup = 5\n[grid]\nfast = [0.1, 0.3]\nslow = [0.02, 0.05]\n";

fn grid_file(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("grid.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(grid: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let store = fixtures_uri();
    let mut args = vec![
        "sweep",
        "--store",
        &store,
        "--strategy",
        guests::EMA_CROSS,
        "--grid",
        grid.to_str().unwrap(),
        "--latency-us",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tapedeck(&args)
}

fn ok(o: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `sweep.parquet`'s rows, each as name → value text.
fn parquet_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(n, f)| (n.clone(), f.to_string()))
                .collect()
        })
        .collect()
}

const FILES: [&str; 4] = ["sweep.json", "sweep.parquet", "report.md", "report.html"];

/// The sweep directories `a` and `b` hold the same bytes but for wall clocks, points too.
fn assert_same_sweeps(a: &Path, b: &Path, points: usize) {
    assert_same_run_dirs(a, b, &FILES);
    for i in 0..points {
        let p = format!("points/{i:04}");
        let d = tapedeck::rerun::first_difference(&a.join(&p), &b.join(&p)).unwrap();
        assert_eq!(d, None, "{p}");
    }
}

#[test]
fn a_two_by_two_grid_is_ranked_as_its_points_summaries_say() {
    let dir = tmp("two-by-two");
    let out = dir.join("out");
    let stdout = ok(&sweep(&grid_file(&dir, GRID), &out, &["--jobs", "2"]));
    assert!(stdout.contains("rank  point"), "{stdout}");
    // Each point's own run directory, its config the grid's point over the base.
    let mut sharpe = Vec::new();
    for i in 0..4 {
        let p = out.join(format!("points/{i:04}"));
        let card = json(&p.join("config.json"));
        let config: Value =
            serde_json::from_str(card["modules"][0]["config"].as_str().unwrap()).unwrap();
        let (fast, slow) = ([0.1, 0.3][i / 2], [0.02, 0.05][i % 2]);
        assert_eq!(
            config,
            serde_json::json!({"fast": fast, "slow": slow, "warmup": 5})
        );
        sharpe.push((i, json(&p.join("summary.json"))["stats"]["sharpe"].as_f64()));
    }
    // Best first, absent last, ties by point.
    let mut want = sharpe.clone();
    want.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
        (x, y) => y.is_some().cmp(&x.is_some()).then(a.0.cmp(&b.0)),
    });
    let rows = parquet_rows(&out.join("sweep.parquet"));
    let got: Vec<String> = rows.iter().map(|r| r["point"].clone()).collect();
    let want_points: Vec<String> = want.iter().map(|w| w.0.to_string()).collect();
    assert_eq!(got, want_points, "{sharpe:?}");
    for (r, (i, s)) in rows.iter().zip(&want) {
        let summary = json(&out.join(format!("points/{i:04}/summary.json")));
        // Parquet's text of a double is in exponent form: compare the numbers, bit for bit.
        let num = |t: &str| (t != "null").then(|| t.parse::<f64>().unwrap());
        assert_eq!(num(&r["sharpe"]), *s);
        assert_eq!(num(&r["pnl"]), summary["stats"]["pnl"].as_f64());
        assert_eq!(r["fills"], summary["totals"]["trades"].to_string());
    }
    assert_eq!(rows[0]["rank"], "1");
    assert!(rows[0].contains_key("fast") && rows[0].contains_key("slow"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("### sharpe by `fast`"), "{md}");
    assert!(md.contains("### sharpe over `fast` × `slow`"), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "the heatmap");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["best"]["point"].to_string(), got[0]);
}

#[test]
fn a_point_reruns_identically() {
    let dir = tmp("rerun");
    let out = dir.join("out");
    ok(&sweep(&grid_file(&dir, GRID), &out, &[]));
    let point = out.join("points/0002");
    let o = tapedeck(&["rerun", point.to_str().unwrap()]);
    let stdout = ok(&o);
    assert!(stdout.starts_with("identical: Backtest"), "{stdout}");
}

#[test]
fn a_sweep_writes_the_same_bytes_run_for_run_whatever_the_jobs() {
    let dir = tmp("same");
    let grid = grid_file(&dir, GRID);
    let (a, b) = (dir.join("a"), dir.join("b"));
    ok(&sweep(&grid, &a, &["--jobs", "1"]));
    ok(&sweep(&grid, &b, &["--jobs", "3"]));
    assert_same_sweeps(&a, &b, 4);
}

#[test]
fn bad_grids_are_refused_naming_the_file_and_the_key() {
    let dir = tmp("bad");
    for (text, says) in [
        (
            "[grid]\nfast = 0.1\n",
            "grid.toml: grid.fast: want a list of values",
        ),
        (
            "[grid]\nfast = [0.1, \"x\"]\n",
            "grid.toml: grid.fast[1]: a string in a list",
        ),
        ("[grids]\nfast = [0.1]\n", "grid.toml: grids: unknown key"),
    ] {
        let o = sweep(&grid_file(&dir, text), &dir.join("out"), &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{text:?}: {err}");
    }
    // A key the strategy does not know is refused by its init, naming the point.
    let o = sweep(
        &grid_file(&dir, "[grid]\nfats = [0.1, 0.2]\n"),
        &dir.join("out"),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("fats=0.") && err.contains("refused its config"),
        "{err}"
    );
    // Checked before any point runs: a bad last point stops the sweep before the first.
    let out = dir.join("late");
    let o = sweep(
        &grid_file(&dir, "[[point]]\nfast = 0.3\n[[point]]\nfats = 0.2\n"),
        &out,
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("fats=0.2"), "{err}");
    assert!(!out.join("points").exists(), "a point ran before the check");
}

#[test]
fn an_explicit_list_of_points_runs_in_its_order() {
    let dir = tmp("list");
    let out = dir.join("out");
    let text = "[base]\nslow = 0.05\n[[point]]\nfast = 0.3\n[[point]]\nfast = 0.1\nslow = 0.02\n[[point]]\nfast = 0.2\n";
    ok(&sweep(&grid_file(&dir, text), &out, &["--metric", "pnl"]));
    let config = |i: usize| -> Value {
        let card = json(&out.join(format!("points/{i:04}/config.json")));
        serde_json::from_str(card["modules"][0]["config"].as_str().unwrap()).unwrap()
    };
    assert_eq!(config(0), serde_json::json!({"fast": 0.3, "slow": 0.05}));
    assert_eq!(config(1), serde_json::json!({"fast": 0.1, "slow": 0.02}));
    assert_eq!(config(2), serde_json::json!({"fast": 0.2, "slow": 0.05}));
    let rows = parquet_rows(&out.join("sweep.parquet"));
    assert_eq!(rows.len(), 3);
    // slow is unset at points 0 and 2: null in its column (the base's value is in the config).
    let slow: Vec<&str> = rows.iter().map(|r| r["slow"].as_str()).collect();
    assert_eq!(slow.iter().filter(|s| **s == "null").count(), 2, "{rows:?}");
    let pnl: Vec<f64> = rows.iter().map(|r| r["pnl"].parse().unwrap()).collect();
    assert!(pnl.windows(2).all(|w| w[0] >= w[1]), "{pnl:?}");
}

#[test]
fn two_shards_merged_are_the_single_process_sweep() {
    let dir = tmp("shards");
    let grid = grid_file(&dir, GRID);
    let whole = dir.join("whole");
    ok(&sweep(&grid, &whole, &[]));
    let shard = |i: u32| {
        let out = dir.join(format!("shard-{i}"));
        ok(&sweep(&grid, &out, &["--shard", &format!("{i}/2")]));
        out
    };
    let (s0, s1) = (shard(0), shard(1));
    assert!(s0.join("points/0000").is_dir() && !s0.join("points/0001").exists());
    let merged = dir.join("merged");
    let o = tapedeck(&[
        "merge",
        s1.to_str().unwrap(),
        s0.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    let stdout = ok(&o);
    assert!(
        stdout.contains("merged 2 shards of a sweep: 4 points"),
        "{stdout}"
    );
    assert_same_sweeps(&whole, &merged, 4);
    // A missing shard, a shard twice.
    for (dirs, says) in [
        (vec![&s0], "shard(s) 1/2 missing"),
        (vec![&s0, &s1, &s0], "shard 0/2 is given twice"),
    ] {
        let mut args = vec!["merge".to_string()];
        args.extend(dirs.iter().map(|d| d.display().to_string()));
        args.extend(["--out".into(), dir.join("bad").display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = tapedeck(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
