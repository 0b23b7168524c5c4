//! The live engine's figures, for `GET /metrics` (after the recorder's) and `GET /status`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::recorder::metrics::Histogram;

#[derive(Debug, Default)]
pub struct LiveMetrics {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    pub decisions: AtomicU64,
    pub fills: AtomicU64,
    pub swaps: AtomicU64,
    pub rollbacks: AtomicU64,
    pub traps: AtomicU64,
    /// Batches on which the shadow decided otherwise than the active module.
    pub shadow_divergent: AtomicU64,
    /// Events fed to a module to rebuild its state (swaps, rollbacks, streams seen mid-way).
    pub catch_up_events: AtomicU64,
    /// Exec events the recorder refused (never expected: an alert).
    pub exec_refused: AtomicU64,
    /// Control calls refused (no or a wrong token, a module not matching its pin).
    pub control_refused: AtomicU64,
    /// From ingest (the recorder took the event) to the decisions on its batch.
    pub input_to_decision: Histogram,
    /// How long the event path stood still for a swap, exactly, for the last swaps.
    pauses: Samples,
    /// From ingest of a batch's first event to the decisions on the batch, exactly, for the
    /// last batches.
    latencies: Samples,
}

/// The last [`SAMPLES`] durations, for exact quantiles.
#[derive(Debug, Default)]
struct Samples(Mutex<VecDeque<Duration>>);

const SAMPLES: usize = 100_000;

impl Samples {
    fn push(&self, d: Duration) {
        let mut p = self.0.lock().expect("samples lock");
        if p.len() == SAMPLES {
            p.pop_front();
        }
        p.push_back(d);
    }

    /// (p50, p99, max) in µs.
    fn quantiles(&self) -> Option<(u64, u64, u64)> {
        let mut v: Vec<Duration> = self
            .0
            .lock()
            .expect("samples lock")
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize].as_micros() as u64;
        Some((q(0.5), q(0.99), v[v.len() - 1].as_micros() as u64))
    }
}

impl LiveMetrics {
    pub fn record_pause(&self, d: Duration) {
        self.pauses.push(d);
    }

    pub fn record_latency(&self, d: Duration) {
        self.latencies.push(d);
    }

    /// (p50, p99, max) of the last swap pauses, in µs.
    pub fn pause_quantiles(&self) -> Option<(u64, u64, u64)> {
        self.pauses.quantiles()
    }

    /// (p50, p99, max) of the last batches' input-to-decision latency, in µs.
    pub fn latency_quantiles(&self) -> Option<(u64, u64, u64)> {
        self.latencies.quantiles()
    }

    pub fn render(&self, out: &mut String) {
        let p = "tapedeck_live";
        let counters: [(&str, &AtomicU64, &str); 11] = [
            (
                "events_total",
                &self.events,
                "Events run through the active module.",
            ),
            (
                "batches_total",
                &self.batches,
                "Guest calls on the event path.",
            ),
            (
                "decisions_total",
                &self.decisions,
                "Decisions of the active module.",
            ),
            ("fills_total", &self.fills, "Fills of the paper venue."),
            ("swaps_total", &self.swaps, "Module swaps (and promotions)."),
            (
                "rollbacks_total",
                &self.rollbacks,
                "Rollbacks, automatic and by hand.",
            ),
            ("traps_total", &self.traps, "Traps of the active module."),
            (
                "shadow_divergent_batches_total",
                &self.shadow_divergent,
                "Batches the shadow decided otherwise.",
            ),
            (
                "catch_up_events_total",
                &self.catch_up_events,
                "Events replayed to rebuild a module's state.",
            ),
            (
                "exec_refused_total",
                &self.exec_refused,
                "Exec events the recorder refused.",
            ),
            (
                "control_refused_total",
                &self.control_refused,
                "Control calls refused.",
            ),
        ];
        for (name, v, help) in counters {
            let _ = writeln!(out, "# HELP {p}_{name} {help}\n# TYPE {p}_{name} counter");
            let _ = writeln!(out, "{p}_{name} {}", v.load(Relaxed));
        }
        let name = format!("{p}_input_to_decision_seconds");
        let _ = writeln!(
            out,
            "# HELP {name} From the recorder taking an event to the decisions on its batch.\n# TYPE {name} histogram"
        );
        self.input_to_decision.render(out, &name, "");
        if let Some((p50, p99, max)) = self.pause_quantiles() {
            let name = format!("{p}_swap_pause_seconds");
            let _ = writeln!(
                out,
                "# HELP {name} How long the event path stood still for a swap.\n# TYPE {name} summary"
            );
            for (q, v) in [("0.5", p50), ("0.99", p99), ("1", max)] {
                let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", v as f64 / 1e6);
            }
        }
    }
}
