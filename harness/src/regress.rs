//! Regression: a baseline and a candidate strategy on the same streams, with the same batch
//! boundaries (one replay runs both), executed against the recorded market by the simulated
//! venue inside that same pass ([`execute`], which a backtest of one strategy uses too). Per stream and overall: the first divergence, decision and trade counts, PnL,
//! max drawdown, fees, turnover; and the `--fail-on` verdict.

use serde::Serialize;
use serde_json::Value;

use crate::decision::Decision;
use crate::error::Result;
use crate::event::Envelope;
use crate::replay::{
    BatchObserver, DataPin, Finding, Plugin, ReplayOptions, StreamReport, replay_observed,
};
use crate::runtime::Runtime;
use crate::stats::StatsConfig;
use crate::store::{EventSource, SeqRange};
use crate::venue::{Performance, Venue, VenueConfig};

pub const BASELINE: &str = "baseline";
pub const CANDIDATE: &str = "candidate";

/// Where the two strategies first decide differently on a stream.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Divergence {
    pub seq: u64,
    pub time_ns: i64,
    pub event_type: String,
    /// The event at that seq.
    pub event: Value,
    /// Every output each strategy emitted for that event, as the reports write them
    /// ([`crate::decision::Output::to_json_named`]: instruments by symbol).
    pub baseline: Vec<Value>,
    pub candidate: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamRegress {
    pub stream: String,
    pub events: u64,
    pub first_divergence: Option<Divergence>,
    pub baseline: Performance,
    pub candidate: Performance,
    pub findings: Vec<Finding>,
    /// Every output of each side, for the decisions artifact.
    #[serde(skip)]
    pub decisions: [Vec<Decision>; 2],
    /// The stream's instrument table, to name instruments in reports.
    #[serde(skip)]
    pub instruments: tapedeck_guest::Instruments,
    /// What was read, for the run card.
    #[serde(skip)]
    pub data: DataPin,
}

/// Sums over streams.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub decisions: u64,
    pub orders: u64,
    pub trades: u64,
    pub pnl: f64,
    /// The worst drawdown of any stream.
    pub max_drawdown: f64,
    pub fees: f64,
    pub turnover: f64,
}

impl Totals {
    pub fn add(&mut self, p: &Performance) {
        self.decisions += p.decisions;
        self.orders += p.orders;
        self.trades += p.trades;
        self.pnl += p.pnl;
        self.max_drawdown = self.max_drawdown.max(p.max_drawdown);
        self.fees += p.fees;
        self.turnover += p.turnover;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegressReport {
    pub streams: Vec<StreamRegress>,
    pub baseline: Totals,
    pub candidate: Totals,
    pub diverged_streams: u64,
}

impl RegressReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.streams.iter().flat_map(|s| &s.findings)
    }
}

/// One `--fail-on` condition.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum FailOn {
    /// Any stream where the decisions diverge.
    Divergence,
    /// Candidate PnL below baseline PnL by more than this (absolute, or percent of |baseline|).
    PnlDrop { amount: f64, percent: bool },
    /// Candidate max drawdown above baseline's by more than this.
    DrawdownIncrease { amount: f64 },
    /// Any finding (a trap, a state mismatch).
    Finding,
}

impl FailOn {
    /// Parses `divergence,pnl-drop:100,pnl-drop:5%,drawdown-increase:50,finding`.
    pub fn parse_list(spec: &str) -> std::result::Result<Vec<FailOn>, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(FailOn::parse)
            .collect()
    }

    fn parse(s: &str) -> std::result::Result<FailOn, String> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(n, a)| (n, Some(a)));
        let number = |a: Option<&str>| -> std::result::Result<(f64, bool), String> {
            let a =
                a.ok_or_else(|| format!("`{name}` needs a value, like {name}:100 or {name}:5%"))?;
            let (num, pct) = a.strip_suffix('%').map_or((a, false), |n| (n, true));
            num.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| (v, pct))
                .ok_or_else(|| format!("bad value {a:?} in `{s}`"))
        };
        match name {
            "divergence" | "any-divergence" => Ok(FailOn::Divergence),
            "finding" | "findings" | "trap" => Ok(FailOn::Finding),
            "pnl-drop" => number(arg).map(|(amount, percent)| FailOn::PnlDrop { amount, percent }),
            "drawdown-increase" => {
                number(arg).map(|(amount, _)| FailOn::DrawdownIncrease { amount })
            }
            _ => Err(format!(
                "unknown --fail-on rule `{name}`: use divergence, pnl-drop:X[%], drawdown-increase:X, finding"
            )),
        }
    }

    /// Why this rule fails the report, if it does.
    pub fn check(&self, r: &RegressReport) -> Option<String> {
        let (b, c) = (&r.baseline, &r.candidate);
        match self {
            FailOn::Divergence => (r.diverged_streams > 0)
                .then(|| format!("decisions diverge on {} stream(s)", r.diverged_streams)),
            FailOn::Finding => {
                let n = r.findings().count();
                (n > 0).then(|| format!("{n} finding(s)"))
            }
            FailOn::PnlDrop { amount, percent } => {
                let limit = if *percent {
                    b.pnl.abs() * amount / 100.0
                } else {
                    *amount
                };
                (b.pnl - c.pnl > limit).then(|| format!("PnL dropped by {:.6} (baseline {:.6}, candidate {:.6}; allowed {limit:.6})", b.pnl - c.pnl, b.pnl, c.pnl))
            }
            FailOn::DrawdownIncrease { amount } => (c.max_drawdown - b.max_drawdown > *amount)
                .then(|| {
                    format!(
                        "max drawdown grew by {:.6} (baseline {:.6}, candidate {:.6})",
                        c.max_drawdown - b.max_drawdown,
                        b.max_drawdown,
                        c.max_drawdown
                    )
                }),
        }
    }
}

/// The `--fail-on` verdict: why the run fails, empty when it passes. Findings (traps, state
/// mismatches) always fail a run and come first; then each rule that triggers, in the order
/// given.
pub fn verdict(rules: &[FailOn], report: &RegressReport) -> Vec<String> {
    FailOn::Finding
        .check(report)
        .into_iter()
        .chain(
            rules
                .iter()
                .filter(|r| **r != FailOn::Finding)
                .filter_map(|r| r.check(report)),
        )
        .collect()
}

/// The venues of one stream, one per strategy, fed inside the replay loop.
struct Venues(Vec<Venue>);

impl BatchObserver for Venues {
    fn on_batch(&mut self, batch: &[u8], decisions: &[Vec<Decision>]) {
        for (v, d) in self.0.iter_mut().zip(decisions) {
            v.on_batch(batch, d);
        }
    }
}

/// Runs `strategies` on the streams `opts.streams` matches, in one pass: each batch goes to
/// the guests, then to one simulated venue per strategy with the decisions it made. Returns
/// each stream's replay report and every strategy's performance on it, by stream key.
pub fn execute(
    rt: &Runtime,
    source: &dyn EventSource,
    strategies: &[Plugin],
    opts: &ReplayOptions,
    venue: &VenueConfig,
    stats: &StatsConfig,
) -> Result<Vec<(StreamReport, Vec<Performance>)>> {
    let streams = replay_observed(rt, source, strategies, opts, None, &|_, symbols| {
        Ok(Venues(
            strategies
                .iter()
                .map(|_| Venue::new(venue, symbols.clone(), *stats))
                .collect(),
        ))
    })?;
    Ok(streams
        .into_iter()
        .map(|(r, v)| (r, v.0.into_iter().map(Venue::finish).collect()))
        .collect())
}

/// Runs the regression. `baseline` and `candidate` are strategies; their labels are set here.
pub fn regress(
    rt: &Runtime,
    source: &dyn EventSource,
    baseline: &Plugin,
    candidate: &Plugin,
    opts: &ReplayOptions,
    venue: &VenueConfig,
) -> Result<RegressReport> {
    let plugins = [
        Plugin {
            label: Some(BASELINE.into()),
            ..baseline.clone()
        },
        Plugin {
            label: Some(CANDIDATE.into()),
            ..candidate.clone()
        },
    ];
    let executed = execute(
        rt,
        source,
        &plugins,
        &ReplayOptions {
            keep_outputs: true,
            ..opts.clone()
        },
        venue,
        &StatsConfig::default(),
    )?;
    let mut streams = Vec::with_capacity(executed.len());
    for (mut s, perf) in executed {
        let [b_perf, c_perf]: [Performance; 2] = perf.try_into().expect("two strategies");
        let b = s.outputs.remove(BASELINE).unwrap_or_default();
        let c = s.outputs.remove(CANDIDATE).unwrap_or_default();
        let names = crate::event::instrument_table(&s.instruments);
        let data = s.pin();
        // The event the strategies first diverge at, read from the store (its envelope).
        let first_divergence = match first_divergence(&b, &c, &[], &names) {
            None => None,
            Some(d) => {
                let mut at = Vec::new();
                source.read(
                    &s.stream,
                    SeqRange {
                        from: d.seq,
                        to: d.seq,
                    },
                    &mut |e| {
                        at.push(e);
                        Ok(())
                    },
                )?;
                first_divergence(&b, &c, &at, &names)
            }
        };
        streams.push(StreamRegress {
            stream: s.stream,
            events: s.events,
            first_divergence,
            baseline: b_perf,
            candidate: c_perf,
            findings: s.findings,
            decisions: [b, c],
            instruments: names,
            data,
        });
    }
    Ok(RegressReport::sum(streams))
}

impl RegressReport {
    /// The report of these streams (by stream key): the sums over them, in their order.
    pub fn sum(streams: Vec<StreamRegress>) -> RegressReport {
        let mut report = RegressReport {
            baseline: Totals::default(),
            candidate: Totals::default(),
            diverged_streams: 0,
            streams: Vec::new(),
        };
        for s in &streams {
            report.baseline.add(&s.baseline);
            report.candidate.add(&s.candidate);
            report.diverged_streams += s.first_divergence.is_some() as u64;
        }
        report.streams = streams;
        report
    }
}

/// The first seq at which the two decision logs differ, with both sides' outputs there (their
/// instruments named by the stream's table `names`) and the event at that seq if `events`
/// holds it.
pub fn first_divergence(
    b: &[Decision],
    c: &[Decision],
    events: &[Envelope],
    names: &tapedeck_guest::Instruments,
) -> Option<Divergence> {
    let i = (0..b.len().max(c.len())).find(|&i| match (b.get(i), c.get(i)) {
        (Some(x), Some(y)) => x.seq != y.seq || x.output != y.output,
        _ => true,
    })?;
    let seq = match (b.get(i), c.get(i)) {
        (Some(x), Some(y)) => x.seq.min(y.seq),
        (Some(x), None) | (None, Some(x)) => x.seq,
        (None, None) => unreachable!("i is below the longer length"),
    };
    let at = |d: &[Decision]| {
        d.iter()
            .filter(|x| x.seq == seq)
            .map(|x| x.output.to_json_named(names))
            .collect::<Vec<_>>()
    };
    let event = events.iter().find(|e| e.seq == seq);
    Some(Divergence {
        seq,
        time_ns: event.map_or(0, |e| e.occurred_at),
        event_type: event.map_or_else(String::new, |e| e.body.event_type().to_string()),
        event: event.map_or(Value::Null, |e| {
            serde_json::to_value(&e.body).unwrap_or(Value::Null)
        }),
        baseline: at(b),
        candidate: at(c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Output;
    use crate::event::{OrderTypeName, SideName, TifName};

    fn d(seq: u64, side: &str) -> Decision {
        Decision {
            seq,
            time_ns: seq as i64,
            output: Output::NewOrder {
                instrument: 1,
                client_order_id: 1,
                side: if side == "buy" {
                    SideName::Buy
                } else {
                    SideName::Sell
                },
                order_type: OrderTypeName::Market,
                tif: TifName::Gtc,
                price: "0".parse().unwrap(),
                qty: "1".parse().unwrap(),
            },
        }
    }

    #[test]
    fn divergence_is_the_first_differing_decision() {
        let none = tapedeck_guest::Instruments::default();
        assert_eq!(
            first_divergence(
                &[d(1, "buy"), d(5, "sell")],
                &[d(1, "buy"), d(5, "sell")],
                &[],
                &none,
            ),
            None
        );
        let x = first_divergence(
            &[d(1, "buy"), d(5, "sell")],
            &[d(1, "buy"), d(7, "sell")],
            &[],
            &none,
        )
        .unwrap();
        assert_eq!(x.seq, 5);
        assert_eq!(x.baseline.len(), 1);
        assert_eq!(x.baseline[0], d(5, "sell").output.to_json());
        assert!(x.candidate.is_empty(), "the candidate did nothing at seq 5");
        let x = first_divergence(&[d(1, "buy")], &[d(1, "sell")], &[], &none).unwrap();
        assert_eq!((x.seq, &x.candidate[0]["side"]), (1, &Value::from("sell")));
        let x = first_divergence(&[d(1, "buy")], &[d(1, "buy"), d(2, "buy")], &[], &none).unwrap();
        assert_eq!((x.seq, x.baseline.len(), x.candidate.len()), (2, 0, 1));
        // Outputs name their instrument from the stream's table, whatever event is at hand.
        let names = tapedeck_guest::Instruments::new([(1, "ETHUSDT".to_string())]);
        let x = first_divergence(&[d(1, "buy")], &[d(1, "sell")], &[], &names).unwrap();
        assert_eq!(x.candidate[0]["instrument"], "ETHUSDT");
    }

    #[test]
    fn fail_on_rules_parse_and_say_why() {
        let rules = FailOn::parse_list("divergence, pnl-drop:5%,drawdown-increase:10").unwrap();
        assert_eq!(
            rules[1],
            FailOn::PnlDrop {
                amount: 5.0,
                percent: true
            }
        );
        assert!(
            FailOn::parse_list("pnl-drop")
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            FailOn::parse_list("vibes")
                .unwrap_err()
                .contains("unknown --fail-on rule")
        );
        let mut r = RegressReport {
            streams: vec![],
            baseline: Totals {
                pnl: 100.0,
                ..Default::default()
            },
            candidate: Totals {
                pnl: 94.0,
                ..Default::default()
            },
            diverged_streams: 0,
        };
        assert!(rules[0].check(&r).is_none());
        assert!(rules[1].check(&r).unwrap().contains("PnL dropped by 6"));
        r.candidate.pnl = 96.0;
        assert!(rules[1].check(&r).is_none());
        r.candidate.max_drawdown = 11.0;
        assert!(rules[2].check(&r).unwrap().contains("drawdown grew"));
    }

    fn report(diverged_streams: u64, findings: usize) -> RegressReport {
        let trap = Finding::GuestTrap {
            stream: "s".into(),
            module: CANDIDATE.into(),
            message: "out of fuel".into(),
            first_seq: 1,
            last_seq: 2,
        };
        RegressReport {
            streams: vec![StreamRegress {
                stream: "s".into(),
                events: 2,
                first_divergence: None,
                baseline: Performance::default(),
                candidate: Performance::default(),
                findings: vec![trap; findings],
                decisions: Default::default(),
                instruments: Default::default(),
                data: Default::default(),
            }],
            baseline: Totals {
                pnl: 100.0,
                ..Default::default()
            },
            candidate: Totals {
                pnl: 90.0,
                ..Default::default()
            },
            diverged_streams,
        }
    }

    #[test]
    fn the_verdict_puts_findings_first_then_the_rules_in_order() {
        let rules = FailOn::parse_list("pnl-drop:5,divergence,finding").unwrap();
        assert!(verdict(&[], &report(0, 0)).is_empty());
        assert!(
            verdict(&[FailOn::Divergence], &report(0, 0)).is_empty(),
            "nothing diverged"
        );
        assert_eq!(
            verdict(&rules, &report(2, 0)),
            [
                "PnL dropped by 10.000000 (baseline 100.000000, candidate 90.000000; allowed 5.000000)",
                "decisions diverge on 2 stream(s)",
            ]
        );
        // Findings fail a run with no rules at all, once even when `finding` is a rule.
        assert_eq!(verdict(&[], &report(0, 3)), ["3 finding(s)"]);
        let v = verdict(&rules, &report(1, 1));
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], "1 finding(s)");
        assert!(v[1].starts_with("PnL dropped"), "{v:?}");
        assert_eq!(v[2], "decisions diverge on 1 stream(s)");
    }
}
