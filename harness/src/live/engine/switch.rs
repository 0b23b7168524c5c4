//! Switching a stream's module: swap, shadow, promote, rollback (by hand and after a trap),
//! and how the new module gets its state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use serde_json::{Value, json};

use super::types::*;
use crate::decision::{Decision, decode_outputs};
use crate::error::{Error, Result};
use crate::event::instrument_table;
use crate::recorder::wal::WalTail;
use crate::runtime::Instance;

impl Engine {
    pub(super) fn commands(&mut self, tail: &WalTail) {
        while let Ok(req) = self.p.commands.try_recv() {
            if !matches!(req.command, Command::Status) {
                self.record_all_batches();
            }
            let answer = match req.command {
                Command::Status => Ok(self.status()),
                Command::Swap(to) => self.swap(to, tail),
                Command::Shadow(m) => self.start_shadow(m, tail),
                Command::Promote => self.promote(),
                Command::Rollback => self.rollback(tail),
            };
            let _ = req.reply.send(answer);
        }
    }

    pub(super) fn status(&self) -> Value {
        let streams: BTreeMap<&str, Value> = self
            .runs
            .iter()
            .map(|(k, r)| {
                (
                    k.as_str(),
                    json!({
                        "applied_seq": r.applied,
                        "events": r.events,
                        "decisions": r.decisions,
                        "orders": r.orders,
                        "fills": r.fills,
                        "pnl": r.venue.pnl(),
                        "module": r.active.as_ref().map(|s| s.loaded.sha256.clone()),
                        "since_seq": r.active.as_ref().map(|s| s.since),
                        "shadow": r.shadow.as_ref().map(|s| json!({
                            "module": s.loaded.sha256,
                            "since_seq": s.since,
                            "divergence": r.shadow_seen,
                        })),
                        "findings": r.findings,
                    }),
                )
            })
            .collect();
        json!({
            "session": self.p.session,
            "active": self.active.describe(),
            "previous": self.previous.as_ref().map(|m| m.describe()),
            "shadow": self.shadow.as_ref().map(|m| m.describe()),
            "swaps": self.swaps,
            "rollbacks": self.rollbacks,
            "streams": streams,
        })
    }

    /// The active module trapped on the batch starting at `first`: roll back to the
    /// previous module (its state at the swap, caught up to just before the batch) and run
    /// the batch with it; with nothing to roll back to, the strategy is down on the stream.
    pub(super) fn trapped(
        &mut self,
        run: &mut StreamRun,
        e: &Error,
        first: u64,
        batch: &[u8],
        tail: &WalTail,
    ) -> Result<()> {
        let slot = run.active.take().expect("the active module trapped");
        let (first_seq, last_seq) = match e {
            Error::GuestTrap {
                first_seq,
                last_seq,
                ..
            } => (*first_seq, *last_seq),
            _ => (first, first),
        };
        self.p.metrics.traps.fetch_add(1, Relaxed);
        self.record_batches(run);
        let finding = json!({
            "kind": "guest_trap",
            "stream": run.key,
            "module": slot.loaded.sha256,
            "message": e.to_string(),
            "first_seq": first_seq,
            "last_seq": last_seq,
        });
        tracing::error!(stream = %run.key, module = %slot.loaded.sha256, error = %e, "ALERT: the active module trapped");
        if run.findings.len() < FINDINGS {
            run.findings.push(finding.clone());
        }
        let Some(prev) = self.previous.clone() else {
            self.audit(
                "live_finding",
                json!({ "finding": finding, "rolled_back": false }),
            );
            return Ok(());
        };
        let t = Instant::now();
        let inst = self.rolled_back(run, &prev, first - 1, tail);
        match inst {
            Ok((mut inst, handoff)) => {
                let out = inst.on_events(batch);
                match out {
                    Ok(out) => decode_outputs(&out, first, &run.times, &mut self.decided),
                    Err(e2) => {
                        run.findings.push(json!({
                            "kind": "guest_trap",
                            "stream": run.key,
                            "module": prev.sha256,
                            "message": e2.to_string(),
                            "first_seq": first,
                        }));
                        self.audit("live_finding", json!({ "finding": finding, "rolled_back": false, "previous_trapped": e2.to_string() }));
                        return Ok(());
                    }
                }
                run.active = Some(Slot {
                    loaded: prev.clone(),
                    inst,
                    since: first - 1,
                });
                self.rollbacks += 1;
                self.p.metrics.rollbacks.fetch_add(1, Relaxed);
                self.audit(
                    "live_rollback",
                    json!({
                        "automatic": true,
                        "finding": finding,
                        "from": slot.loaded.sha256,
                        "to": prev.sha256,
                        "to_config": prev.config,
                        "streams": { run.key.clone(): { "seq": first - 1, "handoff": handoff } },
                        "pause_us": t.elapsed().as_micros() as u64,
                    }),
                );
            }
            Err(err) => {
                tracing::error!(stream = %run.key, error = %err, "ALERT: rollback failed; the strategy is down on this stream");
                self.audit(
                    "live_finding",
                    json!({ "finding": finding, "rolled_back": false, "error": err.to_string() }),
                );
            }
        }
        Ok(())
    }

    /// An instance of `prev` with its state as of `through` (see [`Engine::state_for`]).
    pub(super) fn rolled_back(
        &self,
        run: &StreamRun,
        prev: &Arc<Loaded>,
        through: u64,
        tail: &WalTail,
    ) -> Result<(Instance, Handoff)> {
        self.state_for(run, prev, None, through, tail)
    }

    /// An instance of `to` with the state of the stream as of `through`, and how it got it:
    /// from `handoff` (the active module's snapshot) if `to` restores it; else from the
    /// state `to` had when it last left this stream, caught up since; else caught up from
    /// the stream's start.
    pub(super) fn state_for(
        &self,
        run: &StreamRun,
        to: &Arc<Loaded>,
        handoff: Option<&[u8]>,
        through: u64,
        tail: &WalTail,
    ) -> Result<(Instance, Handoff)> {
        let table = instrument_table(&run.symbols);
        let mut inst = self.fresh(to, run)?;
        if let Some(b) = handoff {
            if inst.restore(b).is_ok() {
                inst.set_instruments(&table)?;
                return Ok((inst, Handoff::Snapshot));
            }
            inst = self.fresh(to, run)?;
        }
        let saved = run
            .saved
            .iter()
            .find(|s| s.sha256 == to.sha256 && s.config == to.config);
        if let Some(saved) = saved {
            if inst.restore(&saved.snapshot).is_ok() {
                inst.set_instruments(&table)?;
                let n = self.catch_up(run, &mut inst, saved.seq, through, tail)?;
                return Ok((
                    inst,
                    Handoff::Saved {
                        from_seq: saved.seq,
                        events: n,
                    },
                ));
            }
            inst = self.fresh(to, run)?;
        }
        let n = self.catch_up(run, &mut inst, 0, through, tail)?;
        Ok((inst, Handoff::CatchUp { events: n }))
    }

    /// Every stream to `to`: state from the active module's snapshot when `to` restores it,
    /// else caught up. Prepared for every stream first: if one fails, nothing changes.
    pub(super) fn swap(&mut self, to: Arc<Loaded>, tail: &WalTail) -> CommandReply {
        let from = self.active.clone();
        let t0 = Instant::now();
        let ready = self.prepare_all(&to, tail)?;
        let mut done = BTreeMap::new();
        for (k, p) in ready {
            let run = self.runs.get_mut(&k).expect("prepared");
            let at = run.applied;
            let old = run.active.replace(Slot {
                loaded: to.clone(),
                inst: p.inst,
                since: at,
            });
            if let Some(old) = old {
                run.save(&old.loaded, p.snapshot, at);
            }
            done.insert(k, json!({ "seq": at, "handoff": p.handoff }));
        }
        self.previous = Some(from.clone());
        self.active = to.clone();
        self.swaps += 1;
        self.p.metrics.swaps.fetch_add(1, Relaxed);
        let pause = t0.elapsed();
        self.p.metrics.record_pause(pause);
        let answer = json!({
            "from": from.sha256,
            "to": to.sha256,
            "to_config": to.config,
            "streams": done,
            "pause_us": pause.as_micros() as u64,
        });
        self.audit("live_swap", answer.clone());
        Ok(answer)
    }

    /// For every stream, an instance of `to` holding the state the active module has now;
    /// the first failure (naming its stream) instead.
    pub(super) fn prepare_all(
        &mut self,
        to: &Arc<Loaded>,
        tail: &WalTail,
    ) -> std::result::Result<Vec<(String, Prepared)>, String> {
        let mut runs = std::mem::take(&mut self.runs);
        let mut ready = Vec::new();
        let mut failed = None;
        for (k, run) in runs.iter_mut() {
            match self.prepare(run, to, tail) {
                Ok(p) => ready.push((k.clone(), p)),
                Err(e) => {
                    failed = Some(format!("{k}: {e}"));
                    break;
                }
            }
        }
        self.runs = runs;
        match failed {
            Some(e) => Err(e),
            None => Ok(ready),
        }
    }

    /// An instance of `to` with the state the stream's active module has: handed over
    /// through its snapshot, or (refused, or no module active) caught up from the start.
    pub(super) fn prepare(
        &self,
        run: &mut StreamRun,
        to: &Arc<Loaded>,
        tail: &WalTail,
    ) -> Result<Prepared> {
        let at = run.applied;
        let snapshot = run.active.as_mut().and_then(|s| s.inst.snapshot().ok());
        let (inst, handoff) = self.state_for(run, to, snapshot.as_deref(), at, tail)?;
        Ok(Prepared {
            inst,
            handoff,
            snapshot,
        })
    }

    pub(super) fn start_shadow(&mut self, m: Arc<Loaded>, tail: &WalTail) -> CommandReply {
        let ready = self.prepare_all(&m, tail)?;
        let mut done = BTreeMap::new();
        for (k, p) in ready {
            let run = self.runs.get_mut(&k).expect("prepared");
            let at = run.applied;
            run.shadow = Some(Slot {
                loaded: m.clone(),
                inst: p.inst,
                since: at,
            });
            run.shadow_seen = Divergence::default();
            done.insert(k, json!({ "seq": at, "handoff": p.handoff }));
        }
        self.shadow = Some(m.clone());
        let answer = json!({ "shadow": m.sha256, "config": m.config, "streams": done });
        self.audit("live_shadow", answer.clone());
        Ok(answer)
    }

    pub(super) fn promote(&mut self) -> CommandReply {
        let Some(m) = self.shadow.take() else {
            return Err("no shadow module to promote: POST /shadow first".into());
        };
        let from = self.active.clone();
        let mut done = BTreeMap::new();
        for (k, run) in self.runs.iter_mut() {
            let Some(shadow) = run.shadow.take() else {
                continue;
            };
            let at = run.applied;
            let old = run.active.replace(Slot {
                since: at,
                ..shadow
            });
            if let Some(mut old) = old {
                let snapshot = old.inst.snapshot().ok();
                run.save(&old.loaded, snapshot, at);
            }
            done.insert(
                k.clone(),
                json!({ "seq": at, "divergence": run.shadow_seen }),
            );
        }
        self.previous = Some(from.clone());
        self.active = m.clone();
        self.swaps += 1;
        self.p.metrics.swaps.fetch_add(1, Relaxed);
        let answer =
            json!({ "from": from.sha256, "to": m.sha256, "to_config": m.config, "streams": done });
        self.audit("live_promote", answer.clone());
        Ok(answer)
    }

    pub(super) fn rollback(&mut self, tail: &WalTail) -> CommandReply {
        let Some(prev) = self.previous.clone() else {
            return Err("nothing to roll back to: no swap has happened".into());
        };
        let from = self.active.clone();
        let t0 = Instant::now();
        let mut ready = Vec::new();
        for (k, run) in &self.runs {
            let r = self
                .rolled_back(run, &prev, run.applied, tail)
                .map_err(|e| format!("{k}: {e}"))?;
            ready.push((k.clone(), r));
        }
        let mut done = BTreeMap::new();
        for (k, (inst, handoff)) in ready {
            let run = self.runs.get_mut(&k).expect("listed");
            let at = run.applied;
            let old = run.active.replace(Slot {
                loaded: prev.clone(),
                inst,
                since: at,
            });
            if let Some(mut old) = old {
                let snapshot = old.inst.snapshot().ok();
                run.save(&old.loaded, snapshot, at);
            }
            done.insert(k, json!({ "seq": at, "handoff": handoff }));
        }
        self.active = prev.clone();
        self.previous = None;
        self.rollbacks += 1;
        self.p.metrics.rollbacks.fetch_add(1, Relaxed);
        let answer = json!({
            "automatic": false,
            "from": from.sha256,
            "to": prev.sha256,
            "to_config": prev.config,
            "streams": done,
            "pause_us": t0.elapsed().as_micros() as u64,
        });
        self.audit("live_rollback", answer.clone());
        Ok(answer)
    }
}

/// Compares the active module's decisions on a batch with the shadow's; whether they differ.
pub(super) fn compare(
    seen: &mut Divergence,
    active: &[Decision],
    shadow: &[Decision],
    names: &tapedeck_guest::Instruments,
) -> bool {
    seen.compared_batches += 1;
    if active == shadow {
        return false;
    }
    seen.divergent_batches += 1;
    if seen.first.is_none() {
        let i = active
            .iter()
            .zip(shadow)
            .position(|(a, s)| a != s)
            .unwrap_or(active.len().min(shadow.len()));
        let side = |d: Option<&Decision>| {
            d.map_or(
                Value::Null,
                |d| json!({ "seq": d.seq, "output": d.output.to_json_named(names) }),
            )
        };
        let seq = active.get(i).or(shadow.get(i)).map_or(0, |d| d.seq);
        seen.first = Some(json!({
            "seq": seq,
            "active": side(active.get(i)),
            "shadow": side(shadow.get(i)),
        }));
    }
    true
}
