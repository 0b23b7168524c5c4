//! Warm-up sensitivity (`regress`/`backtest --warmup-check N`): a strategy replayed from N
//! start points spread over the first half of each stream, each started fresh (no event
//! before it), its decisions compared with the full-range run's from that point on. A start
//! point has converged at the first seq from which every decision equals the full run's
//! (its last differing decision's seq + 1; the start itself if none differs). The stream's
//! answer is the latest of these: from that seq on, where the replay starts does not change
//! what the strategy decides — indicator warm-up bugs (an EMA seeded from the first price,
//! a window that is never filled) show up as a late seq or as `None` (never converges).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::decision::{Decision, Output};
use crate::error::Result;
use crate::replay::{NoObserver, Plugin, ReplayOptions, matching_streams, replay_observed};
use crate::runtime::Runtime;
use crate::store::EventSource;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StartPoint {
    /// The first seq this replay saw.
    pub seq: u64,
    /// The first seq from which its decisions equal the full run's; `None` if they differ up
    /// to the end.
    pub converged_at: Option<u64>,
    /// Seqs (at or after the start) whose decisions differ.
    pub differing_seqs: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamWarmup {
    pub stream: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub starts: Vec<StartPoint>,
    /// The first seq from which every start point's decisions equal the full run's; `None`
    /// if some start point never converges.
    pub converged_from: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WarmupReport {
    pub strategy: String,
    pub streams: Vec<StreamWarmup>,
}

/// The start points: `n` seqs spread evenly over the first half of `first..=last`.
pub fn start_points(first: u64, last: u64, n: usize) -> Vec<u64> {
    let span = last.saturating_sub(first);
    let mut v: Vec<u64> = (1..=n as u64)
        .map(|i| first + span * i / (2 * n as u64).max(1))
        .filter(|s| *s > first)
        .collect();
    v.dedup();
    v
}

fn by_seq(d: &[Decision], from: u64) -> BTreeMap<u64, Vec<&Output>> {
    let mut m: BTreeMap<u64, Vec<&Output>> = BTreeMap::new();
    for x in d.iter().filter(|x| x.seq >= from) {
        m.entry(x.seq).or_default().push(&x.output);
    }
    m
}

/// Where a replay from `start` agrees with the full run from then on.
pub fn convergence(full: &[Decision], part: &[Decision], start: u64, last: u64) -> StartPoint {
    let (a, b) = (by_seq(full, start), by_seq(part, start));
    let mut differing = 0;
    let mut last_diff = None;
    for seq in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if a.get(seq) != b.get(seq) {
            differing += 1;
            last_diff = Some(*seq);
        }
    }
    let converged_at = match last_diff {
        None => Some(start),
        Some(s) if s >= last => None,
        Some(s) => Some(s + 1),
    };
    StartPoint {
        seq: start,
        converged_at,
        differing_seqs: differing,
    }
}

fn decisions(
    rt: &Runtime,
    source: &dyn EventSource,
    strategy: &Plugin,
    opts: &ReplayOptions,
    key: &str,
) -> Result<(Vec<Decision>, u64, u64)> {
    let opts = ReplayOptions {
        keep_outputs: true,
        progress: None,
        ..opts.clone()
    };
    let keys = [key.to_string()];
    let mut run = replay_observed(
        rt,
        source,
        std::slice::from_ref(strategy),
        &opts,
        Some(&keys),
        &|_, _| Ok(NoObserver),
    )?;
    let (mut r, _) = run.remove(0);
    let d = r.outputs.remove(strategy.label()).unwrap_or_default();
    Ok((d, r.start_seq, r.last_seq))
}

/// The warm-up check of `strategy` on the streams `opts.streams` matches, from `n` start
/// points each.
pub fn warmup_check(
    rt: &Runtime,
    source: &dyn EventSource,
    strategy: &Plugin,
    opts: &ReplayOptions,
    n: usize,
) -> Result<WarmupReport> {
    let mut streams = Vec::new();
    for key in matching_streams(source, &opts.streams)? {
        // A shard checks its own streams (the others replay to nothing in it).
        if opts.shard.is_some_and(|s| !s.takes_stream(&key)) {
            continue;
        }
        let (full, first, last) = decisions(rt, source, strategy, opts, &key)?;
        let mut starts = Vec::new();
        for s in start_points(first, last, n) {
            let o = ReplayOptions {
                cold_start: Some(s),
                ..opts.clone()
            };
            let (part, _, _) = decisions(rt, source, strategy, &o, &key)?;
            starts.push(convergence(&full, &part, s, last));
        }
        let converged_from = starts
            .iter()
            .map(|p| p.converged_at)
            .try_fold(first, |acc, c| c.map(|c| acc.max(c)));
        streams.push(StreamWarmup {
            stream: key,
            first_seq: first,
            last_seq: last,
            starts,
            converged_from,
        });
    }
    Ok(WarmupReport {
        strategy: strategy.label().to_string(),
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(seq: u64, v: f64) -> Decision {
        Decision {
            seq,
            time_ns: seq as i64,
            output: Output::Metric {
                name: "x".into(),
                value: v,
            },
        }
    }

    #[test]
    fn start_points_cover_the_first_half() {
        assert_eq!(start_points(1, 1001, 4), vec![126, 251, 376, 501]);
        assert_eq!(start_points(1, 3, 4), vec![2]);
    }

    #[test]
    fn convergence_is_after_the_last_difference() {
        let full = [metric(5, 1.0), metric(8, 2.0), metric(12, 3.0)];
        // From 6: 8 differs, 12 agrees -> converged at 9.
        let part = [metric(8, 2.5), metric(12, 3.0)];
        let p = convergence(&full, &part, 6, 20);
        assert_eq!((p.converged_at, p.differing_seqs), (Some(9), 1));
        // A decision the full run does not have counts too.
        let part = [metric(7, 0.0), metric(8, 2.0), metric(12, 3.0)];
        assert_eq!(convergence(&full, &part, 6, 20).converged_at, Some(8));
        // Equal from the start.
        let part = [metric(8, 2.0), metric(12, 3.0)];
        assert_eq!(convergence(&full, &part, 6, 20).converged_at, Some(6));
        // Differing at the last seq: never.
        let part = [metric(8, 2.0), metric(12, 3.0), metric(20, 1.0)];
        assert_eq!(convergence(&full, &part, 6, 20).converged_at, None);
    }
}
