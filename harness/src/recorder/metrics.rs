//! The recorder's metrics, kept in atomics and rendered in the Prometheus text format for
//! `GET /metrics`. Names start with `tapedeck_recorder_`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Class;

/// Rows of one metric: (labels, value).
type Rows = Vec<(String, f64)>;

/// One of a sink's histograms.
type SinkHistogram = fn(&SinkMetrics) -> &Histogram;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram (cumulative on output, as Prometheus wants).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, secs: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add((secs.max(0.0) * 1e6) as u64, Relaxed);
    }

    /// The smallest bucket bound at or above quantile `q` (None: no observations).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {cum}");
    }
}

/// One sink's figures.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub name: String,
    /// Events stored, per class.
    pub stored: [AtomicU64; 2],
    /// The last WAL record this sink has stored.
    pub stored_lsn: AtomicU64,
    pub retries: AtomicU64,
    pub errors: AtomicU64,
    /// Whether the last append failed (1) or not (0).
    pub failing: AtomicU64,
    /// Seconds from ingest to stored of the newest stored event, in µs.
    pub lag_us: AtomicU64,
    pub insert_seconds: Histogram,
    /// From ingest (≈ acknowledgement) to stored and queryable, per event batch.
    pub ack_to_stored_seconds: Histogram,
    /// The last error, for `/healthz`.
    pub last_error: Mutex<Option<String>>,
}

/// Every figure of one recorder.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events acknowledged (durable in the WAL), per class.
    pub acked: [AtomicU64; 2],
    /// Events appended to the WAL per class (acked + gap markers).
    pub sequenced: [AtomicU64; 2],
    /// Resends recognised by event id (acknowledged with their first seq).
    pub deduplicated: AtomicU64,
    /// Input refused (bad JSON, unknown types, oversized, ...) and quarantined.
    pub rejected: AtomicU64,
    /// Market-data events dropped under overload (never critical ones).
    pub dropped: AtomicU64,
    /// Gap markers written for drops.
    pub gaps: AtomicU64,
    pub overloaded: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_segments: AtomicU64,
    pub wal_durable_lsn: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub wal_fsync_seconds: Histogram,
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Binance feeds: messages received, connections open, reconnects, `book_gap`s written
    /// (disconnects and breaks in the update-id chain), snapshots taken, errors (failed
    /// snapshot requests, refused events).
    pub feed_messages: AtomicU64,
    pub feed_connected: AtomicU64,
    pub feed_reconnects: AtomicU64,
    pub feed_gaps: AtomicU64,
    pub feed_snapshots: AtomicU64,
    pub feed_errors: AtomicU64,
    pub sinks: Vec<SinkMetrics>,
    /// Readers of the WAL besides the sinks (the live engine of `tapedeck live`): the WAL is
    /// not trimmed past what they read, but they never count towards overload.
    pub readers: Vec<ReaderMetrics>,
}

/// A WAL reader that is not a sink.
#[derive(Debug, Default)]
pub struct ReaderMetrics {
    pub name: String,
    /// The last WAL record it has taken.
    pub read_lsn: AtomicU64,
}

impl Metrics {
    pub fn new(sink_names: impl IntoIterator<Item = String>) -> Self {
        Metrics {
            sinks: sink_names
                .into_iter()
                .map(|name| SinkMetrics {
                    name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The last WAL record every sink has stored (None: no sinks).
    pub fn least_stored_lsn(&self) -> Option<u64> {
        self.sinks.iter().map(|s| s.stored_lsn.load(Relaxed)).min()
    }

    /// The last WAL record every sink has stored and every reader has taken: what the WAL
    /// may be trimmed up to.
    pub fn least_read_lsn(&self) -> Option<u64> {
        let readers = self.readers.iter().map(|r| r.read_lsn.load(Relaxed));
        self.sinks
            .iter()
            .map(|s| s.stored_lsn.load(Relaxed))
            .chain(readers)
            .min()
    }

    /// Events in the WAL not yet stored by sink `i`, per class.
    pub fn queued(&self, i: usize, class: Class) -> u64 {
        let c = class.index();
        self.sequenced[c]
            .load(Relaxed)
            .saturating_sub(self.sinks[i].stored[c].load(Relaxed))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let p = "tapedeck_recorder";
        let one = |o: &mut String, name: &str, kind: &str, help: &str, rows: Rows| {
            let _ = writeln!(o, "# HELP {p}_{name} {help}\n# TYPE {p}_{name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(o, "{p}_{name}{labels} {v}");
            }
        };
        let g = |a: &AtomicU64| a.load(Relaxed) as f64;
        let by_class = |a: &[AtomicU64; 2]| {
            Class::ALL
                .iter()
                .map(|c| (format!("{{class=\"{}\"}}", c.name()), g(&a[c.index()])))
                .collect()
        };
        one(
            &mut o,
            "acked_events_total",
            "counter",
            "Events acknowledged (durable in the WAL).",
            by_class(&self.acked),
        );
        one(
            &mut o,
            "deduplicated_events_total",
            "counter",
            "Resends acknowledged with their first seq.",
            vec![(String::new(), g(&self.deduplicated))],
        );
        one(
            &mut o,
            "rejected_events_total",
            "counter",
            "Input refused with a reason and quarantined.",
            vec![(String::new(), g(&self.rejected))],
        );
        one(
            &mut o,
            "dropped_events_total",
            "counter",
            "Market-data events dropped under overload.",
            vec![(String::new(), g(&self.dropped))],
        );
        one(
            &mut o,
            "data_loss",
            "gauge",
            "1 once any market data was dropped: alert on it.",
            vec![(
                String::new(),
                f64::from(u8::from(self.dropped.load(Relaxed) > 0)),
            )],
        );
        one(
            &mut o,
            "gap_events_total",
            "counter",
            "book_gap events written for drops.",
            vec![(String::new(), g(&self.gaps))],
        );
        one(
            &mut o,
            "overloaded",
            "gauge",
            "1 while the WAL backlog is over its limit.",
            vec![(String::new(), g(&self.overloaded))],
        );
        one(
            &mut o,
            "wal_bytes",
            "gauge",
            "Bytes in WAL segments.",
            vec![(String::new(), g(&self.wal_bytes))],
        );
        one(
            &mut o,
            "wal_segments",
            "gauge",
            "WAL segment files.",
            vec![(String::new(), g(&self.wal_segments))],
        );
        one(
            &mut o,
            "wal_durable_lsn",
            "gauge",
            "The last WAL record covered by an fsync.",
            vec![(String::new(), g(&self.wal_durable_lsn))],
        );
        one(
            &mut o,
            "wal_fsyncs_total",
            "counter",
            "WAL fsyncs (group commits).",
            vec![(String::new(), g(&self.wal_fsyncs))],
        );
        one(
            &mut o,
            "connections",
            "gauge",
            "Open input connections.",
            vec![(String::new(), g(&self.connections))],
        );
        one(
            &mut o,
            "connections_refused_total",
            "counter",
            "Connections refused at the limit.",
            vec![(String::new(), g(&self.connections_refused))],
        );
        for (name, kind, help, v) in [
            (
                "feed_messages_total",
                "counter",
                "Binance stream messages received.",
                &self.feed_messages,
            ),
            (
                "feed_connected",
                "gauge",
                "Binance stream connections open.",
                &self.feed_connected,
            ),
            (
                "feed_reconnects_total",
                "counter",
                "Binance stream breaks and failed connection attempts (each followed by a reconnect).",
                &self.feed_reconnects,
            ),
            (
                "feed_gap_events_total",
                "counter",
                "book_gap events written for feed breaks and update-id chain breaks.",
                &self.feed_gaps,
            ),
            (
                "feed_snapshots_total",
                "counter",
                "Binance depth snapshots taken.",
                &self.feed_snapshots,
            ),
            (
                "feed_errors_total",
                "counter",
                "Failed snapshot requests, refused feed events, diffs dropped from a full sync buffer.",
                &self.feed_errors,
            ),
        ] {
            one(&mut o, name, kind, help, vec![(String::new(), g(v))]);
        }
        let per_sink = |f: &dyn Fn(usize, &SinkMetrics) -> Rows| -> Rows {
            self.sinks
                .iter()
                .enumerate()
                .flat_map(|(i, s)| f(i, s))
                .collect()
        };
        one(
            &mut o,
            "sink_queue_events",
            "gauge",
            "Events in the WAL not yet stored by the sink.",
            per_sink(&|i, s| {
                Class::ALL
                    .iter()
                    .map(|c| {
                        (
                            format!("{{sink=\"{}\",class=\"{}\"}}", s.name, c.name()),
                            self.queued(i, *c) as f64,
                        )
                    })
                    .collect()
            }),
        );
        one(
            &mut o,
            "sink_stored_events_total",
            "counter",
            "Events stored by the sink.",
            per_sink(&|_, s| {
                Class::ALL
                    .iter()
                    .map(|c| {
                        (
                            format!("{{sink=\"{}\",class=\"{}\"}}", s.name, c.name()),
                            g(&s.stored[c.index()]),
                        )
                    })
                    .collect()
            }),
        );
        one(
            &mut o,
            "sink_retries_total",
            "counter",
            "Appends retried after a failure.",
            per_sink(&|_, s| vec![(format!("{{sink=\"{}\"}}", s.name), g(&s.retries))]),
        );
        one(
            &mut o,
            "sink_errors_total",
            "counter",
            "Appends that failed.",
            per_sink(&|_, s| vec![(format!("{{sink=\"{}\"}}", s.name), g(&s.errors))]),
        );
        one(
            &mut o,
            "sink_failing",
            "gauge",
            "1 while the sink's last append failed.",
            per_sink(&|_, s| vec![(format!("{{sink=\"{}\"}}", s.name), g(&s.failing))]),
        );
        one(
            &mut o,
            "sink_lag_seconds",
            "gauge",
            "Ingest to stored, of the newest stored event.",
            per_sink(&|_, s| vec![(format!("{{sink=\"{}\"}}", s.name), g(&s.lag_us) / 1e6)]),
        );
        let histograms: [(&str, &str, SinkHistogram); 2] = [
            (
                "sink_insert_seconds",
                "Time of one micro-batch append.",
                |s| &s.insert_seconds,
            ),
            (
                "sink_ack_to_stored_seconds",
                "Ingest to queryable in the sink, per event.",
                |s| &s.ack_to_stored_seconds,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(o, "# HELP {p}_{name} {help}\n# TYPE {p}_{name} histogram");
            for s in &self.sinks {
                histogram(s).render(
                    &mut o,
                    &format!("{p}_{name}"),
                    &format!("sink=\"{}\"", s.name),
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP {p}_wal_fsync_seconds Time of one WAL fsync.\n# TYPE {p}_wal_fsync_seconds histogram"
        );
        self.wal_fsync_seconds
            .render(&mut o, &format!("{p}_wal_fsync_seconds"), "");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_quantiles_land_on_bucket_bounds() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.observe(0.002);
        }
        h.observe(0.3);
        h.observe(20.0);
        assert_eq!(h.quantile(0.5), Some(0.0025));
        assert_eq!(h.quantile(0.99), Some(0.5));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0025\"} 98"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 100"), "{out}");
        assert!(out.contains("x_count{} 100"), "{out}");
    }

    #[test]
    fn queue_depth_is_sequenced_minus_stored_per_class() {
        let m = Metrics::new(["pg".to_string()]);
        m.sequenced[Class::Critical.index()].store(10, Relaxed);
        m.sinks[0].stored[Class::Critical.index()].store(4, Relaxed);
        assert_eq!(m.queued(0, Class::Critical), 6);
        let text = m.render();
        assert!(
            text.contains("tapedeck_recorder_sink_queue_events{sink=\"pg\",class=\"critical\"} 6"),
            "{text}"
        );
    }
}
