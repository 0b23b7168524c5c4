//! Reading ahead: a stream's records are read, checked, digested and packed into guest
//! batches on a thread of their own, [`READ_AHEAD`] batches ahead of the caller, who runs the
//! guests (and the venue) on each batch meanwhile; so one stream uses two cores.
//!
//! Invariants: batches come in seq order, cut exactly as an inline read would cut them (every
//! `batch` events, and after each seq in `cut_after`: the stored snapshots); the digest is of
//! every record read (XXH3-128, see [`super::StreamReport::digest`]: fast enough to run
//! on every replay, and a change of data is what it must catch, not an adversary); buffers go back to the reader
//! once the caller is done with a batch, so memory is `READ_AHEAD + 2` batches, whatever the
//! stream's length. An error of the reader (a bad record, the store failing) ends the read and
//! is returned after the batches before it were handed over.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use tapedeck_guest::codec::EventBatchWriter;
use twox_hash::XxHash3_128;

use crate::error::{Error, Result};
use crate::store::{EventSource, SeqRange};

/// Batches read ahead of the one being run.
pub const READ_AHEAD: usize = 4;

/// One packed batch and what the caller needs to know of it.
#[derive(Debug, Default)]
pub(super) struct ReadBatch {
    pub(super) bytes: Vec<u8>,
    /// Event time of each event, in order.
    pub(super) times: Vec<i64>,
    pub(super) first_seq: u64,
    pub(super) last_seq: u64,
    /// Whether the batch ends at a seq of `cut_after`.
    pub(super) at_cut: bool,
}

/// What the read covers.
pub(super) struct ReadPlan<'a> {
    pub(super) key: &'a str,
    pub(super) stream_id: u32,
    pub(super) range: SeqRange,
    /// Stop before the first event after this time.
    pub(super) end_time: Option<i64>,
    pub(super) batch: usize,
    /// Seqs after which a batch ends, ascending.
    pub(super) cut_after: &'a [u64],
}

/// Reads the plan's records ahead on another thread and calls `each` with every batch, in
/// order, on this one; the digest of the records read (XXH3-128, 32 hex digits).
pub(super) fn read_batches(
    source: &dyn EventSource,
    plan: &ReadPlan<'_>,
    each: &mut dyn FnMut(&ReadBatch),
) -> Result<String> {
    let (tx, rx) = sync_channel::<ReadBatch>(READ_AHEAD);
    let (spare_tx, spare_rx) = sync_channel::<ReadBatch>(READ_AHEAD + 2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read(source, plan, &tx, &spare_rx));
        for b in rx.iter() {
            each(&b);
            // The reader may be gone (an error): the buffer is dropped then.
            let _ = spare_tx.try_send(b);
        }
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Bytes gathered before they are fed to the digest.
const DIGEST_CHUNK: usize = 64 << 10;

fn read(
    source: &dyn EventSource,
    plan: &ReadPlan<'_>,
    tx: &SyncSender<ReadBatch>,
    spares: &Receiver<ReadBatch>,
) -> Result<String> {
    let fresh = |spares: &Receiver<ReadBatch>| {
        let mut b = spares.try_recv().unwrap_or_default();
        b.times.clear();
        b
    };
    let mut next = fresh(spares);
    let mut writer = EventBatchWriter::new(std::mem::take(&mut next.bytes));
    let mut cuts = plan.cut_after.iter().peekable();
    let mut digest = XxHash3_128::new();
    // What the digest is fed, gathered into long writes (a streaming hash pays per write; the
    // digest is the same however its input is split).
    let mut digested = Vec::with_capacity(DIGEST_CHUNK + 4096);
    let mut done = false;
    // The caller hung up: nothing more to read for.
    let mut gone = false;
    source.read_records(plan.key, plan.range, &mut |seq, time, record| {
        if done || gone || plan.end_time.is_some_and(|t| time > t) {
            done = true;
            return Ok(());
        }
        let mut head = [0u8; 24];
        head[..8].copy_from_slice(&seq.to_le_bytes());
        head[8..16].copy_from_slice(&time.to_le_bytes());
        head[16..].copy_from_slice(&(record.len() as u64).to_le_bytes());
        digested.extend_from_slice(&head);
        digested.extend_from_slice(record);
        if digested.len() >= DIGEST_CHUNK {
            digest.write(&digested);
            digested.clear();
        }
        writer
            .push_record(record, plan.stream_id)
            .map_err(|err| Error::BadEvent {
                stream: plan.key.to_string(),
                seq,
                message: format!("store gave a bad record: {err}"),
            })?;
        if writer.count() == 1 {
            next.first_seq = seq;
        }
        next.times.push(time);
        next.last_seq = seq;
        while cuts.peek().is_some_and(|c| **c < seq) {
            cuts.next();
        }
        let at_cut = cuts.peek().is_some_and(|c| **c == seq);
        if at_cut || writer.count() as usize >= plan.batch {
            let mut spare = fresh(spares);
            let bytes = std::mem::replace(
                &mut writer,
                EventBatchWriter::new(std::mem::take(&mut spare.bytes)),
            )
            .finish();
            let mut full = std::mem::replace(&mut next, spare);
            full.bytes = bytes;
            full.at_cut = at_cut;
            gone = tx.send(full).is_err();
        }
        Ok(())
    })?;
    if writer.count() > 0 && !gone {
        next.bytes = writer.finish();
        next.at_cut = false;
        let _ = tx.send(next);
    }
    digest.write(&digested);
    Ok(format!("{:032x}", digest.finish_128()))
}
