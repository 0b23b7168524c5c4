//! Latency models of the realistic venue: constant, or an empirical distribution sampled by
//! inverse transform from a generator seeded with the run card's seed (no OS randomness: the
//! same card gives the same latencies), and the fitting of such a distribution from the tape:
//! - feed latency: `ingested_at − occurred_at` of the market events of the replayed streams;
//! - order latency: `occurred_at(acked) − occurred_at(submitted)` of each client order id of
//!   the exec streams (the round trip an exec stream records; the venue takes it as the time
//!   to arrival, which errs late).
//!
//! A fitted distribution is kept as 101 quantiles (0%, 1%, .., 100%); the run card records
//! them, so a run can be repeated without the store it was fitted from.

use std::collections::BTreeMap;

use super::types::{Latency, VenueConfig, VenueModel};
use crate::error::{Error, Result};
use crate::event::Body;
use crate::store::{EventSource, SeqRange};

/// splitmix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One latency model, ready to sample.
#[derive(Debug, Clone)]
pub(crate) enum Sampler {
    Constant(i64),
    Empirical(Vec<i64>),
}

impl Sampler {
    /// `None` for a tape model not resolved yet (treated as 0; [`resolve`] replaces it).
    pub fn new(l: &Latency) -> Self {
        match l {
            Latency::Constant { ns } => Sampler::Constant(*ns),
            Latency::Empirical { quantiles_ns } if quantiles_ns.len() > 1 => {
                Sampler::Empirical(quantiles_ns.clone())
            }
            Latency::Empirical { quantiles_ns } => {
                Sampler::Constant(quantiles_ns.first().copied().unwrap_or(0))
            }
            Latency::Tape { .. } => Sampler::Constant(0),
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> i64 {
        match self {
            Sampler::Constant(ns) => (*ns).max(0),
            Sampler::Empirical(q) => {
                let x = rng.unit() * (q.len() - 1) as f64;
                let i = x as usize;
                let f = x - i as f64;
                let v = q[i] as f64 + (q[i + 1] - q[i]) as f64 * f;
                (v.round() as i64).max(0)
            }
        }
    }
}

/// The 101 quantiles (nearest rank) of `samples`; empty for no samples.
pub fn quantiles(mut samples: Vec<i64>) -> Vec<i64> {
    if samples.is_empty() {
        return Vec::new();
    }
    samples.sort_unstable();
    let n = samples.len();
    (0..=100)
        .map(|p| samples[((p * (n - 1)) as f64 / 100.0).round() as usize])
        .collect()
}

fn is_market(b: &Body) -> bool {
    matches!(
        b,
        Body::Quote { .. }
            | Body::Trade { .. }
            | Body::BookSnapshot { .. }
            | Body::BookDelta { .. }
    )
}

/// Feed latencies (ingested − occurred) of the market events of `streams`.
pub fn feed_samples(source: &dyn EventSource, streams: &[String]) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for s in streams {
        source.read(s, SeqRange::ALL, &mut |e| {
            if is_market(&e.body) {
                out.push(e.ingested_at - e.occurred_at);
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Order latencies (acked − submitted, per client order id) of the exec streams `streams`.
pub fn order_samples(source: &dyn EventSource, streams: &[String]) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for s in streams {
        let mut sent: BTreeMap<u64, i64> = BTreeMap::new();
        source.read(s, SeqRange::ALL, &mut |e| {
            match e.body {
                Body::OrderSubmitted {
                    client_order_id, ..
                } => {
                    sent.insert(client_order_id, e.occurred_at);
                }
                Body::OrderAcked {
                    client_order_id, ..
                } => {
                    if let Some(t) = sent.remove(&client_order_id) {
                        out.push(e.occurred_at - t);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The config with every tape latency fitted from `source` (feed: the run's `streams`;
/// order: the exec streams its glob names) and recorded as an empirical distribution.
pub fn resolve(
    cfg: &VenueConfig,
    source: &dyn EventSource,
    streams: &[String],
) -> Result<VenueConfig> {
    let Some(model) = &cfg.model else {
        return Ok(cfg.clone());
    };
    let mut m: VenueModel = model.clone();
    let no_samples = |what: &str| {
        Error::message(
            format!("venue config field `{what}`"),
            "the tape has no latency samples",
        )
    };
    if let Some(Latency::Tape { streams: glob }) = &m.feed_latency {
        let keys = match glob {
            Some(g) => crate::store::matching_streams(source, g)?,
            None => streams.to_vec(),
        };
        let q = quantiles(feed_samples(source, &keys)?);
        if q.is_empty() {
            return Err(no_samples("feed_latency"));
        }
        m.feed_latency = Some(Latency::Empirical { quantiles_ns: q });
    }
    if let Some(Latency::Tape { streams: glob }) = &m.order_latency {
        let keys = crate::store::matching_streams(source, glob.as_deref().unwrap_or(""))?;
        let q = quantiles(order_samples(source, &keys)?);
        if q.is_empty() {
            return Err(no_samples("order_latency"));
        }
        m.order_latency = Some(Latency::Empirical { quantiles_ns: q });
    }
    Ok(VenueConfig {
        model: Some(m),
        ..cfg.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empirical_sampling_is_seeded_and_stays_in_range() {
        let s = Sampler::new(&Latency::Empirical {
            quantiles_ns: vec![100, 200, 1000],
        });
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..1000).map(|_| s.sample(&mut r)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert!(a.iter().all(|v| (100..=1000).contains(v)));
        // Half the mass below the median quantile (200).
        let below = a.iter().filter(|v| **v < 200).count();
        assert!((400..600).contains(&below), "{below}");
    }

    #[test]
    fn quantiles_of_a_known_sample() {
        let q = quantiles((1..=1001).rev().collect());
        assert_eq!(q.len(), 101);
        assert_eq!((q[0], q[50], q[100]), (1, 501, 1001));
    }
}
