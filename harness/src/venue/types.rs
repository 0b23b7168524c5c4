//! The venue's settings, as the run card records them: the plain venue's (one latency, flat
//! fees) and, optionally, the realistic model's ([`VenueModel`]: latency models, queue
//! position, book walking, fee schedules and tiers, funding). With no model the plain venue
//! runs exactly as before and the run card is unchanged (the model field is left out).
//!
//! A model read from a file (`--venue FILE`) is checked by [`VenueModel::from_json`]: an
//! unknown or malformed field is an error naming the field's path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Venue settings; part of the run card.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VenueConfig {
    pub latency_ns: i64,
    pub maker_fee_bps: f64,
    pub taker_fee_bps: f64,
    /// Keep an equity sample every this many events (and at every fill).
    pub sample_every: u64,
    /// Instead of `sample_every`: at most one equity sample per this many ns (and every fill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equity_interval_ns: Option<i64>,
    /// The realistic venue model; `None` = the plain venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<VenueModel>,
}

impl Default for VenueConfig {
    fn default() -> Self {
        VenueConfig {
            latency_ns: 0,
            maker_fee_bps: 1.0,
            taker_fee_bps: 5.0,
            sample_every: 1000,
            equity_interval_ns: None,
            model: None,
        }
    }
}

/// The realistic venue: an L2 book per instrument (from snapshots and deltas; from quotes where
/// an instrument has no depth data), orders that walk it, resting orders with a queue position,
/// latency models, fee schedules, funding. An intent reaches the venue `latency_ns` (the plain
/// setting) plus a feed latency sample plus an order latency sample after its event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct VenueModel {
    /// From the exchange's time of an event to the strategy seeing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_latency: Option<Latency>,
    /// From the strategy sending an order (or cancel) to the venue receiving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_latency: Option<Latency>,
    /// How a resting order's place in the queue at its price advances.
    #[serde(default)]
    pub queue: QueueModelConfig,
    /// A market order walks only the levels less than this far from the touch (quote units;
    /// a price protection band); the rest expires. hftbacktest's market orders walk 100
    /// ticks: a band of 100 × tick size matches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_band: Option<f64>,
    /// Own fills take liquidity from the book: a level keeps the taken quantity off until the
    /// recorded data removes the level.
    #[serde(default)]
    pub own_impact: bool,
    /// Fees for every instrument without its own schedule (default: the plain settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees: Option<FeeSchedule>,
    /// Fees per instrument symbol.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instrument_fees: BTreeMap<String, FeeSchedule>,
    /// Pay or receive funding at recorded funding events (perpetuals): position × mark × rate,
    /// paid by longs when the rate is positive.
    #[serde(default)]
    pub funding: bool,
    /// Seed of the latency samplers (with the run card, the run is reproducible).
    #[serde(default)]
    pub seed: u64,
}

/// A latency model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// The same every time.
    Constant { ns: i64 },
    /// An empirical distribution, as its quantiles at evenly spaced probabilities (sorted,
    /// at least one): sampled by inverse transform with linear interpolation, from a
    /// generator seeded with [`VenueModel::seed`]. Negative values count as 0.
    Empirical { quantiles_ns: Vec<i64> },
    /// Fitted from the store before the run (and recorded as `empirical`): feed latency from
    /// the replayed streams' events (ingested − occurred), order latency from the
    /// submitted → acked pairs of the exec streams `streams` names (a glob).
    Tape {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streams: Option<String>,
    },
}

/// Queue position models (hftbacktest's, on L2 data).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueModelConfig {
    /// The quantity ahead starts as the level's quantity; trades at the price take from it;
    /// when the level shrinks it is clamped to the level (`RiskAverseQueueModel`).
    #[default]
    RiskAverse,
    /// Cancels split ahead/behind with probability f(back)/(f(back)+f(front)), f(x)=x^n
    /// (`ProbQueueModel` + `PowerProbQueueFunc`).
    ProbPower { n: f64 },
    /// f(back)/f(back+front), f(x)=x^n (`PowerProbQueueFunc2`).
    ProbPower2 { n: f64 },
    /// 1 − f(front/(front+back)), f(x)=x^n (`PowerProbQueueFunc3`).
    ProbPower3 { n: f64 },
    /// f(back)/(f(back)+f(front)), f(x)=ln(1+x) (`LogProbQueueFunc`).
    ProbLog,
    /// f(back)/f(back+front), f(x)=ln(1+x) (`LogProbQueueFunc2`).
    ProbLog2,
}

/// Maker and taker fees, basis points of notional (negative: a rebate), with optional tiers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeeSchedule {
    pub maker_fee_bps: f64,
    pub taker_fee_bps: f64,
    /// From the first tier whose `from_turnover` the venue's turnover so far (all instruments,
    /// quote units, before the fill) has reached, in order, these fees apply instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<FeeTier>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeeTier {
    pub from_turnover: f64,
    pub maker_fee_bps: f64,
    pub taker_fee_bps: f64,
}

impl FeeSchedule {
    /// The fee in bps for a fill, given the turnover before it.
    pub fn bps(&self, maker: bool, turnover: f64) -> f64 {
        let (m, t) = self
            .tiers
            .iter()
            .rev()
            .find(|x| turnover >= x.from_turnover)
            .map_or((self.maker_fee_bps, self.taker_fee_bps), |x| {
                (x.maker_fee_bps, x.taker_fee_bps)
            });
        if maker { m } else { t }
    }
}

impl VenueModel {
    /// A model from JSON, checked: errors name the field (`queue.n: ...`).
    pub fn from_json(text: &str) -> Result<VenueModel, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let m: VenueModel = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("venue config field `{path}`: {}", e.inner())
        })?;
        m.validate()?;
        Ok(m)
    }

    /// Values serde accepts but the venue cannot use.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, why: &str| Err(format!("venue config field `{field}`: {why}"));
        for (name, l) in [
            ("feed_latency", &self.feed_latency),
            ("order_latency", &self.order_latency),
        ] {
            match l {
                Some(Latency::Constant { ns }) if *ns < 0 => {
                    return bad(&format!("{name}.ns"), "a latency cannot be negative");
                }
                Some(Latency::Empirical { quantiles_ns }) => {
                    if quantiles_ns.is_empty() {
                        return bad(&format!("{name}.quantiles_ns"), "needs at least one value");
                    }
                    if quantiles_ns.windows(2).any(|w| w[0] > w[1]) {
                        return bad(&format!("{name}.quantiles_ns"), "must be sorted ascending");
                    }
                }
                Some(Latency::Tape { streams: None }) if name == "order_latency" => {
                    return bad(
                        "order_latency.streams",
                        "a tape order latency needs the exec streams' glob",
                    );
                }
                _ => {}
            }
        }
        if let Some(b) = self.market_band
            && !(b.is_finite() && b > 0.0)
        {
            return bad("market_band", "must be a positive price distance");
        }
        match &self.queue {
            QueueModelConfig::ProbPower { n }
            | QueueModelConfig::ProbPower2 { n }
            | QueueModelConfig::ProbPower3 { n }
                if !(n.is_finite() && *n > 0.0) =>
            {
                return bad("queue.n", "must be a positive number");
            }
            _ => {}
        }
        let sched = |name: String, f: &FeeSchedule| -> Result<(), String> {
            let ok = |v: f64| v.is_finite() && v.abs() <= 10_000.0;
            if !ok(f.maker_fee_bps) {
                return bad(&format!("{name}.maker_fee_bps"), "want bps within ±10000");
            }
            if !ok(f.taker_fee_bps) {
                return bad(&format!("{name}.taker_fee_bps"), "want bps within ±10000");
            }
            for (i, t) in f.tiers.iter().enumerate() {
                if !ok(t.maker_fee_bps) || !ok(t.taker_fee_bps) {
                    return bad(&format!("{name}.tiers[{i}]"), "want bps within ±10000");
                }
                if !(t.from_turnover.is_finite() && t.from_turnover >= 0.0) {
                    return bad(
                        &format!("{name}.tiers[{i}].from_turnover"),
                        "want a turnover >= 0",
                    );
                }
                if i > 0 && t.from_turnover < f.tiers[i - 1].from_turnover {
                    return bad(
                        &format!("{name}.tiers[{i}].from_turnover"),
                        "tiers must be in ascending turnover",
                    );
                }
            }
            Ok(())
        };
        if let Some(f) = &self.fees {
            sched("fees".into(), f)?;
        }
        for (sym, f) in &self.instrument_fees {
            sched(format!("instrument_fees.{sym}"), f)?;
        }
        Ok(())
    }

    /// Whether a latency must be fitted from the store first.
    pub fn needs_tape(&self) -> bool {
        matches!(self.feed_latency, Some(Latency::Tape { .. }))
            || matches!(self.order_latency, Some(Latency::Tape { .. }))
    }
}
