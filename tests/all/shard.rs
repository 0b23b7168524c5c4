//! Sharded runs: `replay`, `regress` and `backtest` cut into shards by stream (`--shard I/N`,
//! `--shard env`), each shard's partial run directory, and `tapedeck merge` writing the run
//! directory of the single process, byte for byte (but `summary.json`'s timing). The shards
//! run as local processes with `JOB_COMPLETION_INDEX` set, as Kubernetes Indexed Job pods
//! would, and as a real Slurm job array on a one-node cluster (`scripts/slurm.sh`, started
//! here if `TAPEDECK_SLURM_CONF` does not name a running one) with the merge as a dependent
//! job, over the fixture store and a larger generated one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tapedeck::store::{FileStore, FileStoreOptions};
use tapedeck_dev::fixtures::{FixtureSpec, generate};
use tapedeck_test_guests as guests;

use super::{assert_same_run_dirs, fixtures_uri, tmp};

const SHARDS: u32 = 4;

/// The files a run directory of each kind holds (besides summary.json).
fn files(kind: &str) -> &'static [&'static str] {
    match kind {
        "replay" => &["config.json", "findings.json", "report.md", "junit.xml"],
        _ => &[
            "config.json",
            "report.md",
            "report.html",
            "junit.xml",
            "decisions.parquet",
            "trades.parquet",
            "equity_curve.parquet",
        ],
    }
}

/// The arguments of a run of `kind` over `store` (without --out).
fn args(kind: &str, store: &str) -> Vec<String> {
    let v: Vec<&str> = match kind {
        "replay" => vec![
            "replay",
            "--store",
            store,
            "--strategy",
            guests::EMA_CROSS,
            "--projector",
            guests::POSITIONS,
        ],
        "regress" => vec![
            "regress",
            "--store",
            store,
            "--baseline",
            guests::EMA_CROSS,
            "--candidate",
            guests::EMA_CROSS_V2,
        ],
        _ => vec![
            "backtest",
            "--store",
            store,
            "--strategy",
            guests::EMA_CROSS,
            "--period",
            "10s",
        ],
    };
    v.into_iter().map(String::from).collect()
}

fn cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tapedeck"));
    c.env(
        "TAPEDECK_CACHE_DIR",
        std::env::temp_dir().join("tapedeck-cli-cache"),
    );
    for v in tapedeck::shard::ENV_VARS {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        o.status.code().is_some_and(|c| c < 2),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn with_out(a: &[String], out: &Path) -> Vec<String> {
    let mut v = a.to_vec();
    v.extend(["--out".into(), out.display().to_string()]);
    v
}

/// The single process's run directory `base/whole`, and its exit code.
fn whole(a: &[String], base: &Path) -> (PathBuf, Option<i32>) {
    let out = base.join("whole");
    let o = run(cmd().args(with_out(a, &out)));
    (out, o.status.code())
}

/// Runs the shards as local processes at once, each told its index as an Indexed Job pod is
/// (`JOB_COMPLETION_INDEX`, with `TAPEDECK_SHARDS`); their directories.
fn pods(a: &[String], base: &Path) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = (0..SHARDS).map(|i| base.join(format!("pod-{i}"))).collect();
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut v = with_out(a, d);
            v.extend(["--shard".into(), "env".into()]);
            cmd()
                .args(v)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("TAPEDECK_SHARDS", SHARDS.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        // A shard with --out exits 0 once its directory is written, findings or not.
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    dirs
}

fn merge(dirs: &[PathBuf], out: &Path) -> Output {
    cmd()
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts `merged` is `whole`'s run directory: the same files, the same bytes.
fn assert_merged(kind: &str, whole: &Path, merged: &Path) {
    assert_eq!(listing(whole), listing(merged), "{kind}: the files");
    assert_same_run_dirs(whole, merged, files(kind));
}

#[test]
fn shards_as_local_pods_merge_into_the_single_run() {
    let base = tmp("pods");
    for kind in ["replay", "regress", "backtest"] {
        let dir = base.join(kind);
        let a = args(kind, &fixtures_uri());
        let (whole, code) = whole(&a, &dir);
        let mut shards = pods(&a, &dir);
        // Any order on the command line.
        shards.reverse();
        let merged = dir.join("merged");
        let o = merge(&shards, &merged);
        assert_eq!(
            o.status.code(),
            code,
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_merged(kind, &whole, &merged);
        // Each shard's card names the shard and the whole work; the merged one neither.
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(shards[0].join("config.json")).unwrap()).unwrap();
        assert_eq!(card["shard"]["index"], SHARDS - 1);
        assert_eq!(card["shard"]["count"], SHARDS);
        assert_eq!(card["shard"]["work"].as_str().unwrap().len(), 32);
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn shards_by_i_of_n_in_one_process_each_and_one_shard_of_one() {
    let base = tmp("i-of-n");
    let a = args("backtest", &fixtures_uri());
    let (whole, _) = whole(&a, &base);
    for n in [1u32, 2, 7] {
        let dirs: Vec<PathBuf> = (0..n)
            .map(|i| {
                let d = base.join(format!("s{i}of{n}"));
                let mut v = with_out(&a, &d);
                v.extend(["--shard".into(), format!("{i}/{n}")]);
                run(cmd().args(v));
                d
            })
            .collect();
        let merged = base.join(format!("merged{n}"));
        let o = merge(&dirs, &merged);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_merged("backtest", &whole, &merged);
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn merge_refuses_shards_that_are_not_one_run_saying_which() {
    let base = tmp("refuse");
    let shards_of = |kind: &str, name: &str| -> Vec<PathBuf> {
        let a = args(kind, &fixtures_uri());
        (0..2)
            .map(|i| {
                let d = base.join(format!("{name}-{i}"));
                let mut v = with_out(&a, &d);
                v.extend(["--shard".into(), format!("{i}/2")]);
                run(cmd().args(v));
                d
            })
            .collect()
    };
    let r = shards_of("regress", "r");
    let b = shards_of("backtest", "b");
    let out = base.join("out");
    let err = |dirs: &[&Path]| {
        let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
        let o = merge(&dirs, &out);
        assert_eq!(o.status.code(), Some(2));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(&[&r[0]]);
    assert!(e.contains("shard(s) 1/2 missing: 1 of 2 given"), "{e}");
    let e = err(&[&r[0], &r[1], &r[1]]);
    assert!(
        e.contains(&format!("shard 1/2 is given twice: {}", r[1].display())),
        "{e}"
    );
    let e = err(&[&r[0], &b[1]]);
    assert!(
        e.contains(&format!(
            "{} and {} are shards of different runs",
            r[0].display(),
            b[1].display()
        )) && e.contains("their run cards differ in fail_on, modules, stats, venue"),
        "{e}"
    );
    // Another shard count: a shard of 3 beside shards of 2.
    let a = args("regress", &fixtures_uri());
    let three = base.join("three");
    let mut v = with_out(&a, &three);
    v.extend(["--shard".into(), "0/3".into()]);
    run(cmd().args(v));
    let e = err(&[&r[0], &three]);
    assert!(e.contains("is shard 0/3 but"), "{e}");
    // A whole run is no shard.
    let (w, _) = whole(&a, &base);
    let e = err(&[&w, &r[1]]);
    assert!(
        e.contains(&format!("{} is a whole run, not a shard's", w.display())),
        "{e}"
    );
    let e = err(&[&base.join("nothing")]);
    assert!(e.contains("is not a shard's run directory"), "{e}");
    assert!(!out.join("summary.json").exists());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_shard_that_names_no_shard_is_an_error_naming_the_variable() {
    let a = args("replay", &fixtures_uri());
    let bad = |shard: &str, env: &[(&str, &str)]| {
        let mut c = cmd();
        c.args(&a).args(["--shard", shard]);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    for (shard, env, says) in [
        (
            "4/4",
            &[][..],
            "shard 4 of 4 does not exist: shards are numbered 0 to 3",
        ),
        ("0/0", &[][..], "the shard count is 0"),
        ("one/2", &[][..], "the index \"one\" is not a whole number"),
        ("env", &[][..], "neither SLURM_ARRAY_TASK_ID"),
        (
            "env",
            &[("SLURM_ARRAY_TASK_ID", "2")][..],
            "SLURM_ARRAY_TASK_COUNT is not set",
        ),
        (
            "env",
            &[("JOB_COMPLETION_INDEX", "2")][..],
            "TAPEDECK_SHARDS is not set",
        ),
        (
            "env",
            &[("JOB_COMPLETION_INDEX", "2"), ("TAPEDECK_SHARDS", "2x")][..],
            "TAPEDECK_SHARDS=\"2x\" is not a whole number",
        ),
    ] {
        let e = bad(shard, env);
        assert!(e.contains(says), "--shard {shard} {env:?}: {e}");
    }
}

#[test]
fn snapshot_shards_write_the_single_runs_snap_files() {
    let base = tmp("snap");
    let snap = |dir: &Path, shard: Option<&str>| {
        let mut c = cmd();
        c.args(["snapshot", "--store", &fixtures_uri(), "--projector"])
            .arg(guests::POSITIONS)
            .arg("--snapshots")
            .arg(dir)
            .args(["--every", "300", "--accept"]);
        if let Some(s) = shard {
            c.args(["--shard", s]);
        }
        run(&mut c);
    };
    snap(&base.join("whole"), None);
    for s in ["0/3", "1/3", "2/3"] {
        snap(&base.join("sharded"), Some(s));
    }
    let (w, s) = (base.join("whole"), base.join("sharded"));
    assert_eq!(listing(&w), listing(&s));
    assert!(listing(&w).len() >= 6);
    for f in listing(&w) {
        assert_eq!(
            std::fs::read(w.join(&f)).unwrap(),
            std::fs::read(s.join(&f)).unwrap(),
            "{f}"
        );
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// The one-node Slurm cluster's slurm.conf: `$TAPEDECK_SLURM_CONF`, else what
/// `scripts/slurm.sh start` starts (or finds running).
fn slurm_conf() -> PathBuf {
    if let Some(c) = std::env::var_os("TAPEDECK_SLURM_CONF") {
        return PathBuf::from(c);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm.sh");
    let o = Command::new(script).arg("start").output().unwrap();
    assert!(
        o.status.success(),
        "scripts/slurm.sh start: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Submits `a` as an array of SHARDS and its merge (deploy/slurm/submit.sh); the job ids.
fn submit(conf: &Path, a: &[String], run_dir: &Path) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/slurm/submit.sh");
    let o = Command::new(script)
        .arg(SHARDS.to_string())
        .arg(run_dir)
        .arg(run_dir.join("merged"))
        .args(a)
        .env("SLURM_CONF", conf)
        .env("TAPEDECK", env!("CARGO_BIN_EXE_tapedeck"))
        .env(
            "TAPEDECK_CACHE_DIR",
            std::env::temp_dir().join("tapedeck-cli-cache"),
        )
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "submit.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Waits (at most `limit`) until none of `jobs` is queued or running.
fn wait_for(conf: &Path, jobs: &[String], limit: Duration) {
    let t0 = Instant::now();
    loop {
        let o = Command::new("squeue")
            .args(["-h", "-o", "%i %T", "-j", &jobs.join(",")])
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        // squeue fails on ids it no longer knows: then they are all done.
        if text.trim().is_empty() || !o.status.success() {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "Slurm jobs still queued after {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_slurm_job_array_and_its_dependent_merge_write_the_single_run() {
    let conf = slurm_conf();
    let base = tmp("slurm");
    // A larger store: 16 streams of 5,000 events.
    let big = base.join("store");
    let mut store = FileStore::create(&big, FileStoreOptions::default()).unwrap();
    generate(
        &mut store,
        &FixtureSpec {
            instruments: 8,
            events_per_stream: 5_000,
            ..FixtureSpec::default()
        },
    )
    .unwrap();
    drop(store);
    let big = big.display().to_string();
    let work = [
        ("replay", fixtures_uri()),
        ("backtest", fixtures_uri()),
        ("backtest", big.clone()),
        ("regress", big),
    ];
    let mut jobs = Vec::new();
    for (n, (kind, store)) in work.iter().enumerate() {
        jobs.extend(submit(
            &conf,
            &args(kind, store),
            &base.join(format!("run{n}")),
        ));
    }
    assert_eq!(jobs.len(), 2 * work.len());
    // Meanwhile, the single runs and, for the larger store, the same shards as pods.
    let mut wholes = Vec::new();
    for (n, (kind, store)) in work.iter().enumerate() {
        let dir = base.join(format!("local{n}"));
        let (w, _) = whole(&args(kind, store), &dir);
        if n >= 2 {
            let merged = dir.join("merged");
            let o = merge(&pods(&args(kind, store), &dir), &merged);
            assert!(o.status.code().is_some_and(|c| c < 2));
            assert_merged(kind, &w, &merged);
        }
        wholes.push(w);
    }
    wait_for(&conf, &jobs, Duration::from_secs(300));
    for (n, (kind, _)) in work.iter().enumerate() {
        let run_dir = base.join(format!("run{n}"));
        let merged = run_dir.join("merged");
        let log = std::fs::read_to_string(run_dir.join("logs/merge.out")).unwrap_or_default();
        assert!(
            merged.join("summary.json").is_file(),
            "{kind} #{n}: the merge job wrote no run directory; its log:\n{log}"
        );
        assert!(
            log.contains(&format!("merged {SHARDS} shards of a {kind}")),
            "{log}"
        );
        assert_merged(kind, &wholes[n], &merged);
    }
    std::fs::remove_dir_all(&base).unwrap();
}
