//! Reading a stream back (the store of the first sink, then the WAL past it): catch-ups, and
//! deciding on events a restarted process never decided on.

use std::sync::atomic::Ordering::Relaxed;

use tapedeck_guest::codec::EventBatchWriter;

use super::types::*;
use crate::error::{Error, Result};
use crate::event::{Envelope, StreamEncoder};
use crate::recorder::now_ns;
use crate::recorder::wal::WalTail;
use crate::runtime::Instance;
use crate::store::SeqRange;

impl Engine {
    /// Feeds `inst` the stream's events `after+1 ..= through` from the store and the WAL, in
    /// batches of the configured size; their decisions are dropped. Returns the events fed.
    pub(super) fn catch_up(
        &self,
        run: &StreamRun,
        inst: &mut Instance,
        after: u64,
        through: u64,
        tail: &WalTail,
    ) -> Result<u64> {
        let mut feed = Feeder::new(self.p.batch, run);
        let in_memory = run.recent.front().is_some_and(|r| r.0 <= after + 1)
            && run.recent.back().is_some_and(|r| r.0 >= through);
        if in_memory {
            for (seq, _, record) in run.recent.iter().filter(|r| r.0 > after && r.0 <= through) {
                feed.push_record(record, *seq, inst)?;
            }
        } else {
            self.read_stream(&run.key, after, through, tail, &mut |r| match r {
                Rec::Packed(seq, _, record) => feed.push_record(record, seq, inst),
                Rec::Envelope(e) => feed.push_envelope(e, inst),
            })?;
        }
        feed.flush(inst)?;
        self.p
            .metrics
            .catch_up_events
            .fetch_add(feed.events, Relaxed);
        Ok(feed.events)
    }

    /// The stream's events `after+1 ..= through`, in order: from the store of the first sink,
    /// then (past what it holds) from the WAL up to what the engine has read.
    pub(super) fn read_stream(
        &self,
        key: &str,
        after: u64,
        through: u64,
        tail: &WalTail,
        f: &mut dyn FnMut(Rec<'_>) -> Result<()>,
    ) -> Result<()> {
        if through <= after {
            return Ok(());
        }
        let metrics = &self.p.reader.metrics;
        // Everything the sink had stored by now is in its store; the rest is still in the
        // WAL: it is not trimmed past what every sink stored, and not at all while this
        // reader says it has taken nothing (the run loop says again what it took).
        self.p.reader.taken(0);
        let stored_lsn = metrics.sinks[0].stored_lsn.load(Relaxed);
        let mut next = after + 1;
        let gap = |expected, got| Error::SeqGap {
            stream: key.to_string(),
            expected,
            got,
        };
        let source = self.p.catch_up_store.open()?;
        source.read_records(
            key,
            SeqRange {
                from: next,
                to: through,
            },
            &mut |seq, time, record| {
                if seq != next {
                    return Err(gap(next, seq));
                }
                next += 1;
                f(Rec::Packed(seq, time, record))
            },
        )?;
        drop(source);
        if next <= through {
            let mut wal = WalTail::new(&self.p.wal_dir, stored_lsn + 1);
            let end = tail.next_lsn();
            while wal.next_lsn() < end && next <= through {
                let Some((lsn, bytes)) = wal.next(end - 1)? else {
                    break;
                };
                let e = self.envelope(lsn, &bytes)?;
                if e.stream_key != key || e.seq < next {
                    continue;
                }
                if e.seq != next {
                    return Err(gap(next, e.seq));
                }
                next += 1;
                f(Rec::Envelope(&e))?;
            }
        }
        if next <= through {
            return Err(Error::message(
                format!("reading {key} back"),
                format!(
                    "the store and the WAL end at seq {}, the stream was at {through}",
                    next - 1
                ),
            ));
        }
        Ok(())
    }

    /// A WAL record as the envelope it holds.
    pub(super) fn envelope(&self, lsn: u64, bytes: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(bytes).map_err(|err| Error::Corrupt {
            path: self.p.wal_dir.clone(),
            line: lsn,
            message: format!("WAL record {lsn} is not an envelope: {err}"),
        })
    }

    /// Decides on the stream's events `after+1 ..= through` read back from the store and the
    /// WAL, as if they had just arrived (after a restart, past what was executed before it),
    /// a batch at a time.
    pub(super) fn decide_read_back(
        &mut self,
        run: &mut StreamRun,
        after: u64,
        through: u64,
        tail: &WalTail,
    ) -> Result<()> {
        let key = run.key.clone();
        let mut from = after;
        while from < through {
            let to = through.min(from + self.p.batch as u64);
            self.read_stream(&key, from, to, tail, &mut |r| {
                let (seq, time, ingested) = match r {
                    Rec::Packed(seq, time, record) => {
                        run.writer
                            .push_record(record, run.id)
                            .map_err(|err| Error::BadEvent {
                                stream: run.key.clone(),
                                seq,
                                message: format!("store gave a bad record: {err}"),
                            })?;
                        (seq, time, now_ns())
                    }
                    Rec::Envelope(e) => {
                        run.learn(e);
                        run.encoder.encode(e, &mut run.writer)?;
                        (e.seq, e.occurred_at, e.ingested_at)
                    }
                };
                if run.writer.count() == 1 {
                    run.first_in_batch = seq;
                    run.first_ingest = ingested;
                }
                run.times.push(time);
                Ok(())
            })?;
            self.run_batch_of(run, tail)?;
            from = to;
        }
        Ok(())
    }
}

/// An event read back: a packed record from a store (seq, time, record), or a WAL envelope.
pub(super) enum Rec<'a> {
    Packed(u64, i64, &'a [u8]),
    Envelope(&'a Envelope),
}

/// Builds catch-up batches and runs them, dropping their decisions.
pub(super) struct Feeder {
    batch: usize,
    key: String,
    stream_id: u32,
    writer: EventBatchWriter,
    encoder: StreamEncoder,
    events: u64,
}

impl Feeder {
    fn new(batch: usize, run: &StreamRun) -> Self {
        Feeder {
            batch,
            key: run.key.clone(),
            stream_id: run.id,
            writer: EventBatchWriter::new(Vec::new()),
            encoder: StreamEncoder::new(run.id),
            events: 0,
        }
    }

    fn push_record(&mut self, record: &[u8], seq: u64, inst: &mut Instance) -> Result<()> {
        self.writer
            .push_record(record, self.stream_id)
            .map_err(|err| Error::BadEvent {
                stream: self.key.clone(),
                seq,
                message: format!("store gave a bad record: {err}"),
            })?;
        self.after_push(inst)
    }

    fn push_envelope(&mut self, e: &Envelope, inst: &mut Instance) -> Result<()> {
        self.encoder.encode(e, &mut self.writer)?;
        self.after_push(inst)
    }

    fn after_push(&mut self, inst: &mut Instance) -> Result<()> {
        self.events += 1;
        if self.writer.count() as usize >= self.batch {
            self.flush(inst)?;
        }
        Ok(())
    }

    fn flush(&mut self, inst: &mut Instance) -> Result<()> {
        if self.writer.count() == 0 {
            return Ok(());
        }
        let w = std::mem::replace(&mut self.writer, EventBatchWriter::new(Vec::new()));
        inst.on_events(&w.finish())?;
        Ok(())
    }
}
