//! The realistic venue through the CLI: `--venue CONFIG` on the fixture store (tape latencies
//! fitted from its streams and recorded in the run card as distributions, a probabilistic
//! queue model, fee tiers), reproducible run for run; and a bad config is refused naming the
//! field, exit 2.

use super::{fixtures_uri, tapedeck, tmp};
use tapedeck_test_guests as guests;

const MODEL: &str = r#"{
  "feed_latency": {"model": "tape"},
  "order_latency": {"model": "tape", "streams": "exec:*"},
  "queue": {"model": "prob_power", "n": 2},
  "fees": {"maker_fee_bps": -0.5, "taker_fee_bps": 4,
           "tiers": [{"from_turnover": 1000, "maker_fee_bps": -1, "taker_fee_bps": 3}]},
  "funding": true,
  "seed": 7
}"#;

fn backtest(venue: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    tapedeck(&[
        "backtest",
        "--store",
        &fixtures_uri(),
        "--streams",
        "md:*",
        "--strategy",
        guests::EMA_CROSS,
        "--latency-us",
        "3",
        "--venue",
        venue.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_venue_model_is_fitted_recorded_and_reproducible() {
    let dir = tmp("model");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("venue.json");
    std::fs::write(&cfg, MODEL).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    for out in [&a, &b] {
        let o = backtest(&cfg, out);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("config.json")).unwrap()).unwrap();
    let model = &card["venue"]["model"];
    for l in ["feed_latency", "order_latency"] {
        assert_eq!(model[l]["model"], "empirical", "{model}");
        assert_eq!(model[l]["quantiles_ns"].as_array().unwrap().len(), 101);
    }
    // The fixtures' orders are acked after some milliseconds: the fitted latency is not 0.
    let median = model["order_latency"]["quantiles_ns"][50].as_i64().unwrap();
    assert!(median > 0, "{model}");
    assert_eq!(model["queue"]["model"], "prob_power");
    assert_eq!(card["venue"]["latency_ns"], 3000);
    // The same run twice: the same figures (the timing aside).
    let summary = |d: &std::path::Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("timing");
        v
    };
    let sa = summary(&a);
    assert!(sa == summary(&b), "the runs differ");
    assert!(sa["totals"]["trades"].as_u64().unwrap() > 0);
    assert_eq!(
        std::fs::read(a.join("trades.parquet")).unwrap(),
        std::fs::read(b.join("trades.parquet")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_venue_config_names_the_field() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    for (text, field) in [
        (r#"{"queue": {"model": "prob_power", "n": 0}}"#, "queue.n"),
        (
            r#"{"order_latency": {"model": "constant", "ns": -5}}"#,
            "order_latency.ns",
        ),
        (r#"{"fees": {"maker_fee_bps": 1}}"#, "fees"),
        (r#"{"latency": 5}"#, "latency"),
        (
            r#"{"order_latency": {"model": "tape"}}"#,
            "order_latency.streams",
        ),
    ] {
        let cfg = dir.join("venue.json");
        std::fs::write(&cfg, text).unwrap();
        let o = backtest(&cfg, &dir.join("out"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(field), "{text}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn regress_runs_through_the_venue_model_too() {
    let dir = tmp("regress");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("venue.json");
    std::fs::write(
        &cfg,
        r#"{"queue": {"model": "prob_log"}, "own_impact": true}"#,
    )
    .unwrap();
    let out = dir.join("out");
    let o = tapedeck(&[
        "regress",
        "--store",
        &fixtures_uri(),
        "--streams",
        "md:*",
        "--baseline",
        guests::EMA_CROSS,
        "--candidate",
        guests::EMA_CROSS,
        "--venue",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(card["venue"]["model"]["queue"]["model"], "prob_log");
    assert_eq!(card["venue"]["model"]["own_impact"], true);
    std::fs::remove_dir_all(&dir).unwrap();
}
