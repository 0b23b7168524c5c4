//! Backtests: one strategy through the venue in the replay pass. On the fixture store its
//! figures are the regression's for the same module (one pass, the same venue); the run
//! directory is the same whatever the jobs; the index and the log give the same report; and
//! on the Binance quote workload (skipped when the shared capture is absent) the run is one
//! stream with orders and fills.

use std::path::{Path, PathBuf};

use tapedeck::backtest::{BacktestReport, backtest};
use tapedeck::event::{Body, Envelope};
use tapedeck::regress::regress;
use tapedeck::replay::{Plugin, ReplayOptions};
use tapedeck::report::backtest::write_backtest_dir;
use tapedeck::report::{Timing, backtest_card};
use tapedeck::stats::StatsConfig;
use tapedeck::store::{EventSink, EventSource, FileStore, MemoryStore};
use tapedeck::venue::VenueConfig;
use tapedeck_test_guests as guests;

use super::{assert_same_run_dirs, fixtures, fixtures_uri, load, rt, tapedeck, tmp};

fn venue() -> VenueConfig {
    VenueConfig {
        latency_ns: 3_000,
        ..VenueConfig::default()
    }
}

fn run_with(source: &dyn EventSource, jobs: usize, out: Option<&Path>) -> BacktestReport {
    backtest(
        rt(),
        source,
        &Plugin::new(load(guests::EMA_CROSS), ""),
        &ReplayOptions {
            jobs,
            ..Default::default()
        },
        &venue(),
        &StatsConfig::default(),
        out,
    )
    .unwrap()
}

fn run(source: &dyn EventSource, jobs: usize) -> BacktestReport {
    run_with(source, jobs, None)
}

/// A backtest of the fixtures written to its run directory `tmp(name)`.
fn run_dir(source: &dyn EventSource, name: &str, jobs: usize) -> (BacktestReport, PathBuf) {
    let out = tmp(name);
    let r = run_with(source, jobs, Some(&out));
    let card = backtest_card(
        "fixtures",
        &Plugin::new(load(guests::EMA_CROSS), ""),
        &ReplayOptions::default(),
        rt().config(),
        &venue(),
        &StatsConfig::default(),
    );
    let timing = Timing {
        started_at_unix_ms: jobs as u128,
        elapsed_ms: 1,
        jobs,
    };
    write_backtest_dir(&out, &card, &r, &timing).unwrap();
    (r, out)
}

/// The rows of a Parquet artifact whose role is `role`, each as text without the role.
fn artifact_rows(path: &Path, role: &str) -> Vec<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let mut text = String::new();
        let mut keep = true;
        for (name, field) in row.get_column_iter() {
            if name == "role" {
                keep = field.to_string() == format!("{role:?}");
            } else {
                text.push_str(&format!("{name}={field} "));
            }
        }
        if keep {
            out.push(text);
        }
    }
    out
}

#[test]
fn a_backtest_has_the_figures_regress_gives_the_same_module() {
    let store = FileStore::open(fixtures()).unwrap();
    let (b, dir) = run_dir(&store, "backtest-vs-regress", 1);
    let ema = Plugin::new(load(guests::EMA_CROSS), "");
    let r = regress(
        rt(),
        &store,
        &ema,
        &ema,
        &ReplayOptions::default(),
        &VenueConfig {
            equity_interval_ns: None,
            ..venue()
        },
    )
    .unwrap();
    // The regression's max drawdown is the worst stream's; the backtest's, the summed
    // equity's (see the_drawdown_of_several_streams_is_their_summed_curves).
    assert_eq!(
        tapedeck::regress::Totals {
            max_drawdown: r.baseline.max_drawdown,
            ..b.totals.clone()
        },
        r.baseline
    );
    assert!(b.totals.trades > 0, "ema-cross trades on the fixtures");
    assert_eq!(b.stats.pnl, r.baseline.pnl);
    assert_eq!(b.stats.fees, r.baseline.fees);
    assert_eq!(b.stats.max_drawdown, b.totals.max_drawdown);
    for (x, y) in b.streams.iter().zip(&r.streams) {
        assert_eq!(x.stream, y.stream);
        assert_eq!(x.performance.max_drawdown, y.baseline.max_drawdown);
        assert_eq!(x.performance.pnl, y.baseline.pnl, "{}", x.stream);
        assert_eq!(
            x.performance.decisions, y.baseline.decisions,
            "{}",
            x.stream
        );
    }
    // The artifacts the backtest wrote as it ran hold the rows the regression's report does.
    let rdir = tmp("regress-vs-backtest");
    tapedeck::report::parquet::write_regress_artifacts(&rdir, &r).unwrap();
    for f in ["decisions.parquet", "trades.parquet"] {
        let rows = artifact_rows(&dir.join(f), "strategy");
        assert!(!rows.is_empty(), "{f}");
        assert_eq!(rows, artifact_rows(&rdir.join(f), "baseline"), "{f}");
    }
    std::fs::remove_dir_all(rdir).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    // Per instrument, the parts add up to the whole.
    let fills: u64 = b.stats.instruments.values().map(|i| i.fills).sum();
    assert_eq!(fills, b.totals.trades);
    let pnl: f64 = b.stats.instruments.values().map(|i| i.pnl).sum();
    assert!((pnl - b.stats.pnl).abs() < 1e-9, "{pnl} vs {}", b.stats.pnl);
    assert!(b.stats.closed.trades > 0 && b.stats.exposure_ns > 0);
}

#[test]
fn backtest_run_directories_are_identical_whatever_the_jobs() {
    let store = FileStore::open(fixtures()).unwrap();
    let (_, da) = run_dir(&store, "backtest-jobs1", 1);
    let (_, db) = run_dir(&store, "backtest-jobs3", 3);
    assert_same_run_dirs(
        &da,
        &db,
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
    let summary = |d: &PathBuf| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("timing");
        v
    };
    assert_eq!(summary(&da), summary(&db));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(da.join("config.json")).unwrap()).unwrap();
    assert_eq!(card["stats"]["period_ns"], 60_000_000_000i64);
    assert_eq!(card["venue"]["equity_interval_ns"], serde_json::Value::Null);
    let html = std::fs::read_to_string(da.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "equity, drawdown, exposure"
    );
}

#[test]
fn instruments_come_from_the_index_as_from_the_log() {
    let dir = tmp("instruments");
    super::replay::copy_dir(&fixtures(), &dir);
    tapedeck::store::index::rebuild(&dir, None).unwrap();
    let store = FileStore::open(&dir).unwrap();
    assert!(store.fresh_index().unwrap().is_some());
    for s in store.streams().unwrap() {
        let from_index = store.instruments(&s.key).unwrap();
        let from_log = tapedeck::store::instruments_from_envelopes(&store, &s.key).unwrap();
        assert_eq!(from_index, from_log, "{}", s.key);
        assert!(!from_log.is_empty(), "{}", s.key);
    }
}

#[test]
fn the_quote_workload_backtests_in_one_stream() {
    let Some(capture) = super::shared_data("binance/spot_btcusdt_20240808.gz") else {
        return;
    };
    let dir = tmp("backtest-workload");
    let out = tmp("backtest-workload-run");
    let w = tapedeck_dev::workload::quote_workload(&capture, 60_000, &dir).unwrap();
    let store = FileStore::open(&dir).unwrap();
    let r = backtest(
        rt(),
        &store,
        &Plugin::new(load(guests::EMA_CROSS), ""),
        &ReplayOptions::default(),
        &VenueConfig {
            equity_interval_ns: Some(60_000_000_000),
            ..VenueConfig::default()
        },
        &StatsConfig::default(),
        Some(&out),
    )
    .unwrap();
    assert_eq!(r.streams.len(), 1);
    assert_eq!(r.events, 60_000);
    assert!(r.totals.orders > 0 && r.totals.trades == r.totals.orders);
    assert_eq!(
        r.stats.instruments.keys().collect::<Vec<_>>(),
        ["BTCUSDT"],
        "{}",
        w.stream
    );
    // Nothing that grows with the events is held: fills and equity samples went to the
    // artifacts as they came, the plots keep a bounded curve.
    let s = &r.streams[0];
    assert!(s.performance.fills.is_empty() && s.performance.equity.is_empty());
    assert!(s.equity_curve.points().len() <= tapedeck::curve::CAPACITY + 1);
    write_backtest_dir(
        &out,
        &backtest_card(
            "workload",
            &Plugin::new(load(guests::EMA_CROSS), ""),
            &ReplayOptions::default(),
            rt().config(),
            &VenueConfig::default(),
            &StatsConfig::default(),
        ),
        &r,
        &Timing {
            started_at_unix_ms: 0,
            elapsed_ms: 0,
            jobs: 1,
        },
    )
    .unwrap();
    let trades = artifact_rows(&out.join("trades.parquet"), "strategy").len() as u64;
    assert_eq!(trades, r.totals.trades);
    let decisions = artifact_rows(&out.join("decisions.parquet"), "strategy").len() as u64;
    assert_eq!(decisions, r.totals.decisions);
    // Every fill plus at most one point a minute, plus the last event.
    let samples = artifact_rows(&out.join("equity_curve.parquet"), "strategy").len() as u64;
    let minutes = (r.stats.span_ns / 60_000_000_000 + 2) as u64;
    assert!(samples <= trades + minutes, "{samples}");
    assert!(samples > trades, "{samples}");
    // Only the run directory's files are left: the parts' scratch directory is gone.
    drop(r);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "decisions.parquet",
            "equity_curve.parquet",
            "junit.xml",
            "report.html",
            "report.md",
            "summary.json",
            "trades.parquet"
        ]
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn the_backtest_command_writes_the_run_directory_and_refuses_bad_spans() {
    let out = tmp("command");
    let o = tapedeck(&[
        "backtest",
        "--store",
        &fixtures_uri(),
        "--strategy",
        guests::EMA_CROSS,
        "--period",
        "10s",
        "--capital",
        "1000",
        "--latency-us",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Sharpe (annualized)"), "{stdout}");
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
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(card["stats"]["period_ns"], 10_000_000_000i64);
    assert_eq!(card["stats"]["capital"], 1000.0);
    assert_eq!(card["venue"]["latency_ns"], 3000);
    assert_eq!(card["venue"]["equity_interval_ns"], 60_000_000_000i64);
    let o = tapedeck(&[
        "backtest",
        "--store",
        &fixtures_uri(),
        "--strategy",
        guests::EMA_CROSS,
        "--period",
        "1.5s",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a span of time"));
}

/// Two streams whose mids mirror each other (100 + x and 100 - x, at the same times):
/// ema-cross is long on one while short on the other, and both lose when the moves reverse.
fn mirrored_streams() -> MemoryStore {
    let mut store = MemoryStore::new();
    // Up 60 steps, down 120, up 60, moving from the start (ema-cross takes a tie of its
    // averages as "short", which would not mirror): the crosses come after each turn.
    let path: Vec<i64> = (0..240)
        .map(|i| match i {
            0..60 => i,
            60..180 => 120 - i,
            _ => i - 240,
        })
        .collect();
    for (key, sign) in [("md:a", 1), ("md:b", -1)] {
        let events: Vec<Envelope> = path
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mid = 1000 + sign * x;
                Envelope::new(
                    key,
                    i as u64 + 1,
                    (i as i64 + 1) * 1_000_000_000,
                    Some("X"),
                    Body::Quote {
                        bid_px: format!("{}.5", mid - 1).parse().unwrap(),
                        bid_qty: "1".parse().unwrap(),
                        ask_px: format!("{mid}.5").parse().unwrap(),
                        ask_qty: "1".parse().unwrap(),
                        update_id: None,
                    },
                )
            })
            .collect();
        store.append(&events).unwrap();
    }
    store
}

// See: review of #15, "combine reports the worst single stream's drawdown".
#[test]
fn the_drawdown_of_several_streams_is_their_summed_curves() {
    let store = mirrored_streams();
    // No fees, which would differ with the prices: the two curves are the same.
    let run = |streams: &str| {
        backtest(
            rt(),
            &store,
            &Plugin::new(load(guests::EMA_CROSS), ""),
            &ReplayOptions {
                streams: streams.into(),
                jobs: 2,
                ..Default::default()
            },
            &VenueConfig {
                taker_fee_bps: 0.0,
                ..venue()
            },
            &StatsConfig::default(),
            None,
        )
        .unwrap()
    };
    let r = run("*");
    let [a, b] = [0, 1].map(|i| &r.streams[i].performance);
    assert!(
        a.trades > 0 && a.trades == b.trades,
        "{} {}",
        a.trades,
        b.trades
    );
    assert!(a.max_drawdown > 0.0);
    // The streams lose together: the sum's drawdown is both of theirs.
    assert_eq!((a.pnl, a.max_drawdown), (b.pnl, b.max_drawdown));
    assert_eq!(r.streams[0].equity_curve, r.streams[1].equity_curve);
    assert_eq!(r.stats.max_drawdown, a.max_drawdown + b.max_drawdown);
    assert_eq!(r.totals.max_drawdown, r.stats.max_drawdown);
    assert_eq!(
        r.stats.max_drawdown_duration_ns,
        a.stats.max_drawdown_duration_ns
    );
    // One stream alone: its own figures.
    let one = run("md:a");
    assert_eq!(one.stats.max_drawdown, a.max_drawdown);
}

/// A store that counts the instrument tables read from it.
struct CountingTables<'a> {
    inner: &'a dyn EventSource,
    reads: std::sync::atomic::AtomicU64,
}

impl EventSource for CountingTables<'_> {
    fn streams(&self) -> tapedeck::error::Result<Vec<tapedeck::store::StreamInfo>> {
        self.inner.streams()
    }
    fn read(
        &self,
        stream: &str,
        range: tapedeck::store::SeqRange,
        f: &mut dyn FnMut(Envelope) -> tapedeck::error::Result<()>,
    ) -> tapedeck::error::Result<()> {
        self.inner.read(stream, range, f)
    }
    fn snapshots(
        &self,
        stream: &str,
    ) -> tapedeck::error::Result<Vec<tapedeck::store::StoredSnapshot>> {
        self.inner.snapshots(stream)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_records(
        &self,
        stream: &str,
        range: tapedeck::store::SeqRange,
        f: &mut tapedeck::store::RecordSink<'_>,
    ) -> tapedeck::error::Result<()> {
        self.inner.read_records(stream, range, f)
    }
    fn instruments(
        &self,
        stream: &str,
    ) -> tapedeck::error::Result<std::collections::BTreeMap<u32, String>> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.instruments(stream)
    }
}

// See: review of #15, "the instrument table is read up to 3 times per stream".
#[test]
fn backtest_and_regress_read_each_streams_instrument_table_once() {
    let store = FileStore::open(fixtures()).unwrap();
    let streams = store.streams().unwrap().len() as u64;
    let counting = CountingTables {
        inner: &store,
        reads: Default::default(),
    };
    let b = run(&counting, 2);
    assert_eq!(
        counting.reads.swap(0, std::sync::atomic::Ordering::Relaxed),
        streams
    );
    // The table the run read names the instruments in the reports.
    for s in &b.streams {
        assert_eq!(
            s.instruments,
            tapedeck::event::instrument_table(&store.instruments(&s.stream).unwrap())
        );
    }
    let ema = Plugin::new(load(guests::EMA_CROSS), "");
    regress(
        rt(),
        &counting,
        &ema,
        &ema,
        &ReplayOptions::default(),
        &venue(),
    )
    .unwrap();
    assert_eq!(counting.reads.into_inner(), streams);
}
