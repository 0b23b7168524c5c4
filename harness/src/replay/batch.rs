//! One batch through a stream's live modules (outputs become decisions, a trap a finding),
//! and the diff of projector state at a stored snapshot.

use serde_json::Value;

use super::types::{Finding, Plugin, ReplayOptions, StreamReport};
use crate::decision::{Decision, decode_outputs};
use crate::diff::diff;
use crate::error::Error;
use crate::runtime::{Instance, ModuleKind};
use crate::store::StoredSnapshot;

/// A module of a stream's replay; `inst` is gone after a trap.
pub(super) struct Live<'p> {
    pub(super) plugin: &'p Plugin,
    pub(super) inst: Option<Instance>,
}

pub(super) fn trap_finding(
    report: &mut StreamReport,
    key: &str,
    l: &Live,
    e: &Error,
    first: u64,
    last: u64,
) {
    let (first_seq, last_seq) = match e {
        Error::GuestTrap {
            first_seq,
            last_seq,
            ..
        } => (*first_seq, *last_seq),
        _ => (first, last),
    };
    report.findings.push(Finding::GuestTrap {
        stream: key.to_string(),
        module: l.plugin.label().to_string(),
        message: e.to_string(),
        first_seq,
        last_seq,
    });
}

/// Runs one batch through every live module. `decided` gets each strategy's decisions on it
/// (cleared first); with `keep_outputs` they are also appended to the report.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_batch(
    live: &mut [Live],
    batch: &[u8],
    key: &str,
    first_seq: u64,
    times: &[i64],
    opts: &ReplayOptions,
    report: &mut StreamReport,
    decided: &mut [Vec<Decision>],
) {
    if let Some(p) = &opts.progress {
        let n = batch
            .get(8..12)
            .map_or(0, |c| u32::from_le_bytes(c.try_into().unwrap()));
        p.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let last_seq = report.last_seq;
    for (l, decided) in live.iter_mut().zip(decided.iter_mut()) {
        decided.clear();
        let Some(inst) = l.inst.as_mut() else {
            continue;
        };
        match inst.on_events(batch) {
            Ok(out) => {
                if l.plugin.module.kind() != ModuleKind::Strategy {
                    continue;
                }
                let name = l.plugin.label().to_string();
                decode_outputs(&out, first_seq, times, decided);
                let n = decided.len() as u64;
                *report.output_counts.entry(name.clone()).or_default() += n;
                if n > 0 && opts.keep_outputs {
                    let v = report.outputs.entry(name).or_default();
                    v.extend_from_slice(decided);
                }
            }
            Err(e) => {
                trap_finding(report, key, l, &e, first_seq, last_seq);
                l.inst = None;
            }
        }
    }
}

pub(super) fn check_snapshots(
    live: &mut [Live],
    snapshots: &[StoredSnapshot],
    seq: u64,
    key: &str,
    opts: &ReplayOptions,
    report: &mut StreamReport,
) {
    for snap in snapshots.iter().filter(|s| s.seq == seq) {
        let Some(l) = live.iter_mut().find(|l| {
            l.plugin.name() == snap.projector && l.plugin.module.kind() == ModuleKind::Projector
        }) else {
            continue;
        };
        let Some(inst) = l.inst.as_mut() else {
            continue;
        };
        report.snapshots_checked += 1;
        match inst.state() {
            Ok(bytes) => {
                let actual: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                for d in diff(&snap.state, &actual, &opts.tolerances) {
                    report.findings.push(Finding::StateMismatch {
                        stream: key.to_string(),
                        seq,
                        projector: snap.projector.clone(),
                        path: d.path,
                        expected: d.expected,
                        actual: d.actual,
                    });
                }
            }
            Err(e) => {
                trap_finding(report, key, l, &e, seq, seq);
                l.inst = None;
            }
        }
    }
}
