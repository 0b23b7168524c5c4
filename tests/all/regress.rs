//! Regression runs on the fixture store: a module against itself is clean; v1 against v2
//! diverges where their decision logs first differ; the run directory is the same whatever the
//! jobs; the Parquet artifacts read back; the HTML report opens in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use parquet::file::reader::{FileReader, SerializedFileReader};
use tapedeck::regress::{FailOn, RegressReport, regress};
use tapedeck::replay::{Plugin, ReplayOptions};
use tapedeck::report::{Timing, regress_card, write_regress_dir};
use tapedeck::store::FileStore;
use tapedeck::venue::VenueConfig;
use tapedeck_test_guests as guests;

use super::{assert_same_run_dirs, fixtures, load, rt, tmp};

fn run(baseline: &str, candidate: &str, jobs: usize) -> RegressReport {
    let store = FileStore::open(fixtures()).unwrap();
    let (b, c) = (
        Plugin::new(load(baseline), ""),
        Plugin::new(load(candidate), ""),
    );
    regress(
        rt(),
        &store,
        &b,
        &c,
        &ReplayOptions {
            jobs,
            ..Default::default()
        },
        &VenueConfig::default(),
    )
    .unwrap()
}

fn write_dir(r: &RegressReport, name: &str, jobs: usize) -> PathBuf {
    let out = tmp(name);
    let (b, c) = (
        Plugin::new(load(guests::EMA_CROSS), ""),
        Plugin::new(load(guests::EMA_CROSS_V2), ""),
    );
    let card = regress_card(
        "fixtures",
        &b,
        &c,
        &ReplayOptions::default(),
        rt().config(),
        &VenueConfig::default(),
        &[FailOn::Divergence],
    );
    let verdict: Vec<String> = FailOn::Divergence.check(r).into_iter().collect();
    write_regress_dir(
        &out,
        &card,
        r,
        &verdict,
        &Timing {
            started_at_unix_ms: jobs as u128,
            elapsed_ms: 1,
            jobs,
        },
    )
    .unwrap();
    out
}

#[test]
fn a_strategy_against_itself_does_not_diverge() {
    let r = run(guests::EMA_CROSS, guests::EMA_CROSS, 2);
    assert_eq!(r.diverged_streams, 0);
    assert_eq!(r.baseline, r.candidate);
    assert!(
        r.baseline.trades > 5,
        "the fixtures make it trade ({} trades)",
        r.baseline.trades
    );
    assert!(FailOn::Divergence.check(&r).is_none());
}

#[test]
fn v1_against_v2_finds_the_first_differing_decision() {
    let r = run(guests::EMA_CROSS, guests::EMA_CROSS_V2, 1);
    assert!(r.diverged_streams > 0);
    assert!(
        r.candidate.trades < r.baseline.trades,
        "v2 filters whipsaws: {} vs {}",
        r.candidate.trades,
        r.baseline.trades
    );
    for s in &r.streams {
        let Some(d) = &s.first_divergence else {
            assert_eq!(s.decisions[0], s.decisions[1], "{}", s.stream);
            continue;
        };
        // Everything before the divergence is the same on both sides.
        let before = |k: usize| {
            s.decisions[k]
                .iter()
                .filter(|x| x.seq < d.seq)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(before(0), before(1), "{}", s.stream);
        assert_ne!(d.baseline, d.candidate);
        assert_eq!(d.event_type, "quote", "ema-cross decides on quotes");
        // The orders there name their instrument by symbol (the stream's own), not its id.
        let symbol = s.stream.rsplit(':').next().unwrap();
        for o in d.baseline.iter().chain(&d.candidate) {
            assert_eq!(o["instrument"], symbol, "{o}");
        }
    }
    assert!(FailOn::Divergence.check(&r).unwrap().contains("diverge"));
}

#[test]
fn regress_run_directories_are_identical_whatever_the_jobs() {
    let dirs = [1, 2].map(|jobs| {
        write_dir(
            &run(guests::EMA_CROSS, guests::EMA_CROSS_V2, jobs),
            &format!("jobs{jobs}"),
            jobs,
        )
    });
    assert_same_run_dirs(
        &dirs[0],
        &dirs[1],
        &[
            "config.json",
            "report.md",
            "report.html",
            "junit.xml",
            "decisions.parquet",
            "trades.parquet",
            "equity_curve.parquet",
        ],
    );
    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn parquet_artifacts_read_back_with_the_right_rows() {
    let r = run(guests::EMA_CROSS, guests::EMA_CROSS_V2, 1);
    let dir = write_dir(&r, "parquet", 1);
    let rows = |f: &str| {
        SerializedFileReader::new(std::fs::File::open(dir.join(f)).unwrap())
            .unwrap()
            .metadata()
            .file_metadata()
            .num_rows() as u64
    };
    assert_eq!(
        rows("trades.parquet"),
        r.baseline.trades + r.candidate.trades
    );
    assert_eq!(
        rows("decisions.parquet"),
        r.baseline.decisions + r.candidate.decisions
    );
    let samples: usize = r
        .streams
        .iter()
        .map(|s| s.baseline.equity.len() + s.candidate.equity.len())
        .sum();
    assert_eq!(rows("equity_curve.parquet"), samples as u64);
    // Decisions name their instrument by symbol, as every report does.
    let decisions =
        SerializedFileReader::new(std::fs::File::open(dir.join("decisions.parquet")).unwrap())
            .unwrap();
    let mut orders = 0;
    for row in decisions.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        for (name, field) in row.get_column_iter() {
            if let (true, parquet::record::Field::Str(j)) = (name == "json", field) {
                let v: serde_json::Value = serde_json::from_str(j).unwrap();
                if v["output"] == "new_order" {
                    orders += 1;
                    assert!(v["instrument"].as_str().unwrap().starts_with("SYM"), "{v}");
                }
            }
        }
    }
    assert!(orders > 0);
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 6);
    assert_eq!(junit.matches("<failure").count() as u64, r.diverged_streams);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_html_report_opens_in_headless_chromium_without_errors() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium: scripts/setup.sh installs it"
        );
        eprintln!("skipping: no chromium here (apt-get install chromium)");
        return;
    };
    let r = run(guests::EMA_CROSS, guests::EMA_CROSS_V2, 1);
    let dir = write_dir(&r, "html", 1);
    let profile = tmp("chromium-profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("Tapedeck regression report"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 2, "two plots");
    assert_eq!(dom.matches("<polyline").count(), 4, "two lines a plot");
    // Axes: time on x (with the date), the value on y, each with ticks and labels.
    assert_eq!(dom.matches(r#"<g class="axis x">"#).count(), 2);
    assert_eq!(dom.matches(r#"<g class="axis y">"#).count(), 2);
    assert_eq!(
        dom.matches(">event time (UTC), 2024-01-02</text>").count(),
        2
    );
    assert!(dom.contains(">equity</text>") && dom.contains(">drawdown</text>"));
    assert!(
        dom.contains(r#"class="tick""#) && dom.contains(">00:00:30</text>"),
        "{dom}"
    );
    assert!(
        dom.contains(r#""instrument": "SYM"#),
        "decisions name the symbol"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console_errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load"))
        .collect();
    assert!(console_errors.is_empty(), "{console_errors:?}");

    // Laid out by the browser: every label of every plot has a size and lies inside its
    // plot, and no two time labels overlap.
    std::fs::write(dir.join("layout.html"), LAYOUT_CHECK).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(["--allow-file-access-from-files", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", dir.join("layout.html").display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains(r#"data-layout="ok""#), "{dom}");
    assert!(dom.contains(r#"data-labels=""#), "{dom}");
    let _ = std::fs::remove_dir_all(profile);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Loads `report.html` beside it and writes what it finds into its own body's attributes:
/// `data-layout` is "ok" or the problems, `data-labels` the number of labels measured.
const LAYOUT_CHECK: &str = r#"<!DOCTYPE html><html><body>
<iframe id="f" src="report.html" width="1200" height="2000"></iframe>
<script>
document.getElementById("f").onload = () => {
  const d = document.getElementById("f").contentDocument;
  const bad = [];
  let labels = 0;
  for (const svg of d.querySelectorAll("svg")) {
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll("text")) {
      const b = t.getBoundingClientRect();
      labels++;
      if (b.width === 0 || b.left < box.left - 0.5 || b.right > box.right + 0.5
          || b.top < box.top - 0.5 || b.bottom > box.bottom + 0.5) {
        bad.push("outside its plot: " + t.textContent);
      }
    }
    const xs = [...svg.querySelectorAll(".axis.x text.tick")].map(t => t.getBoundingClientRect());
    for (let i = 1; i < xs.length; i++) {
      if (xs[i].left < xs[i - 1].right) bad.push("time labels overlap");
    }
  }
  if (labels === 0) bad.push("no labels");
  document.body.setAttribute("data-labels", String(labels));
  document.body.setAttribute("data-layout", bad.length ? bad.join("; ") : "ok");
};
</script></body></html>
"#;
