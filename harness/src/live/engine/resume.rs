//! Resuming a session after a restart: what it did before (from its audit and exec streams),
//! and a stream seen for the first time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tapedeck_guest::codec::EventBatchWriter;

use super::types::*;
use crate::error::{Error, Result};
use crate::event::{Body, Envelope, StreamEncoder};
use crate::live::exec::ExecIds;
use crate::recorder::wal::WalTail;
use crate::stats::StatsConfig;
use crate::store::SeqRange;
use crate::venue::Venue;

impl Resume {
    pub(super) fn visit(&mut self, session: &str, e: &Envelope) {
        if e.stream_key.starts_with("exec:") {
            let ours = e
                .correlation
                .command_id
                .as_deref()
                .is_some_and(|c| c.starts_with(&format!("live:{session}:")));
            let cause = e.correlation.causation_id.as_deref().and_then(|c| {
                let (stream, seq) = c.rsplit_once(':')?;
                Some((stream, seq.parse::<u64>().ok()?))
            });
            if let (true, Some((stream, seq))) = (ours, cause) {
                let v = self.executed.entry(stream.to_string()).or_insert(0);
                *v = (*v).max(seq);
            }
            return;
        }
        let Body::Custom { type_name, data } = &e.body else {
            return;
        };
        let pair = |sha: &str, cfg: &str| {
            (
                data[sha].as_str().unwrap_or_default().to_string(),
                data[cfg].as_str().unwrap_or_default().to_string(),
            )
        };
        match type_name.as_str() {
            "live_started" => {
                let s = &data["strategy"];
                self.active = Some((
                    s["sha256"].as_str().unwrap_or_default().to_string(),
                    s["config"].as_str().unwrap_or_default().to_string(),
                ));
            }
            "live_stream" => {
                if let Some(k) = data["stream"].as_str() {
                    self.module.insert(k.to_string(), pair("module", "config"));
                }
            }
            "live_swap" | "live_promote" | "live_rollback" => {
                let to = pair("to", "to_config");
                if let Some(streams) = data["streams"].as_object() {
                    for k in streams.keys() {
                        self.module.insert(k.clone(), to.clone());
                    }
                }
                if data["automatic"].as_bool() != Some(true) {
                    self.active = Some(to);
                }
            }
            _ => {}
        }
    }
}

impl Engine {
    /// Reads what the session did before this process (see [`Resume`]) and resumes with the
    /// module that was active last.
    pub(super) fn resume(&mut self, from_lsn: u64) -> Result<()> {
        let session = self.p.session.clone();
        let audit = format!("live:{session}");
        let mut r = Resume::default();
        let mut stored: std::collections::HashMap<String, u64> = Default::default();
        let source = self.p.catch_up_store.open()?;
        for s in source.streams()? {
            if s.key != audit && !s.key.starts_with("exec:") {
                continue;
            }
            source.read(&s.key, SeqRange::ALL, &mut |e| {
                r.visit(&session, &e);
                Ok(())
            })?;
            stored.insert(s.key, s.last_seq);
        }
        drop(source);
        // What the WAL holds past the store.
        let mut wal = WalTail::new(&self.p.wal_dir, from_lsn);
        let durable = self.p.reader.progress.durable();
        while let Some((lsn, bytes)) = wal.next(durable)? {
            let e: Envelope = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
                path: self.p.wal_dir.clone(),
                line: lsn,
                message: format!("WAL record {lsn} is not an envelope: {err}"),
            })?;
            if (e.stream_key == audit || e.stream_key.starts_with("exec:"))
                && e.seq > stored.get(&e.stream_key).copied().unwrap_or(0)
            {
                r.visit(&session, &e);
            }
        }
        if let Some((sha, config)) = r.active.clone()
            && (sha != self.active.sha256 || config != self.active.config)
        {
            match self.load_kept(&sha, &config) {
                Ok(m) => {
                    tracing::info!(module = %sha, "resuming with the module active before the restart");
                    self.active = m;
                }
                Err(e) => {
                    tracing::warn!(module = %sha, error = %e, "the module active before the restart cannot be loaded; starting with live.strategy")
                }
            }
        }
        self.resume = r;
        Ok(())
    }

    /// A module kept in the modules directory.
    pub(super) fn load_kept(&self, sha256: &str, config: &str) -> Result<Arc<Loaded>> {
        if sha256 == self.active.sha256 && config == self.active.config {
            return Ok(self.active.clone());
        }
        let path = self.p.modules_dir.join(format!("{sha256}.wasm"));
        Ok(Arc::new(Loaded {
            module: self.p.rt.load(&path)?,
            sha256: sha256.to_string(),
            config: config.to_string(),
        }))
    }

    /// A stream seen for the first time at `seq`: the active module, caught up over what
    /// came before (a restart, or a stream older than this process).
    pub(super) fn new_run(&mut self, key: &str, seq: u64, tail: &WalTail) -> Result<StreamRun> {
        let id = self.runs.len() as u32 + 1;
        let symbols = BTreeMap::new();
        let mut run = StreamRun {
            key: key.to_string(),
            id,
            encoder: StreamEncoder::new(id),
            writer: EventBatchWriter::new(Vec::new()),
            spare: Vec::new(),
            times: Vec::new(),
            first_in_batch: 0,
            first_ingest: 0,
            symbols: symbols.clone(),
            new_symbols: false,
            active: None,
            shadow: None,
            shadow_seen: Divergence::default(),
            saved: Vec::new(),
            venue: Venue::new(&self.p.venue, symbols, StatsConfig::default()),
            ids: ExecIds::new(&self.p.session, key),
            applied: 0,
            silent_until: 0,
            recent: VecDeque::new(),
            batch_ends: Vec::new(),
            events: 0,
            decisions: 0,
            orders: 0,
            fills: 0,
            findings: Vec::new(),
        };
        let module = match self.resume.module.get(key).cloned() {
            Some((sha, config)) => self.load_kept(&sha, &config).unwrap_or_else(|e| {
                tracing::warn!(stream = key, module = %sha, error = %e, "the stream's module before the restart cannot be loaded");
                self.active.clone()
            }),
            None => self.active.clone(),
        };
        // Decided on from here: past the last seq whose orders this session recorded, if it
        // ran the stream before (a restart); else from the first event seen (a stream older
        // than the session is history, not orders to send now).
        let from = match self.resume.module.contains_key(key) {
            true => self.resume.executed.get(key).copied().unwrap_or(0),
            false => seq - 1,
        };
        run.silent_until = from;
        // The symbols the store knows of the stream (events read back name instruments by id).
        if seq > 1 {
            for (id, sym) in self.p.catch_up_store.open()?.instruments(key)? {
                run.venue.add_symbol(id, &sym);
                run.symbols.insert(id, sym);
            }
        }
        let mut inst = self.fresh(&module, &run)?;
        let t = Instant::now();
        // The state up to there is rebuilt silently...
        let silently = (seq - 1).min(from);
        let n = self.catch_up(&run, &mut inst, 0, silently, tail)?;
        if n > 0 {
            tracing::info!(
                stream = key,
                events = n,
                ms = t.elapsed().as_millis() as u64,
                "caught up a stream first seen mid-way"
            );
        }
        self.audit(
            "live_stream",
            json!({
                "stream": key,
                "seq": from,
                "module": module.sha256,
                "config": module.config,
                "handoff": Handoff::CatchUp { events: silently },
            }),
        );
        run.applied = silently;
        run.active = Some(Slot {
            loaded: module,
            inst,
            since: silently,
        });
        // ...and what came after it, before this process first saw the stream, is decided on
        // now (read back from the store and the WAL).
        if silently < seq - 1 {
            tracing::info!(
                stream = key,
                from = silently + 1,
                to = seq - 1,
                "deciding on events recorded before the restart and never decided on"
            );
            self.decide_read_back(&mut run, silently, seq - 1, tail)?;
        }
        run.applied = seq - 1;
        Ok(run)
    }
}
