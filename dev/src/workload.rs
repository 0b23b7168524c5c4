//! The backtest workload of issue 15: the bookTicker quotes of one Binance capture, repeated
//! to N quotes on one stream, in an indexed file store.
//!
//! The capture is imported as `tapedeck import binance` would (the library's `Importer`, into
//! a memory store); its quotes (in seq order) form a block, and block `k` is written with every
//! time shifted by `k` times the block's span (last time - first time + one mean gap between
//! quotes), seqs continuing. The store is a plain file store with its index rebuilt, read in
//! place by `backtest`, `regress` and the benches. A `workload.json` beside it records what it
//! holds: a store whose spec matches is reused, not rewritten.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tapedeck::error::Result;
use tapedeck::event::{Body, Envelope};
use tapedeck::import::binance::Importer;
use tapedeck::store::{EventSink, EventSource, FileStore, FileStoreOptions, MemoryStore, SeqRange};

/// What a workload store holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Workload {
    pub store: PathBuf,
    pub stream: String,
    pub quotes: u64,
    /// Quotes in one block (the capture's).
    pub block: u64,
    /// Time added per block, ns.
    pub span_ns: i64,
    /// Seconds spent writing the store and its index (0 when it was reused).
    pub generate_secs: f64,
}

/// The block: every quote of the capture's one quoting stream, in seq order.
pub fn capture_quotes(capture: &Path) -> Result<(String, Vec<Envelope>)> {
    let mut mem = MemoryStore::new();
    let mut importer = Importer::new(&mut mem, None, None);
    importer.import_file(capture)?;
    importer.finish()?;
    let mut best: Option<(String, Vec<Envelope>)> = None;
    for info in mem.streams()? {
        if info.counts.get("quote").copied().unwrap_or(0) == 0 {
            continue;
        }
        let mut quotes = Vec::new();
        mem.read(&info.key, SeqRange::ALL, &mut |e| {
            if matches!(e.body, Body::Quote { .. }) {
                quotes.push(e);
            }
            Ok(())
        })?;
        if best.as_ref().is_none_or(|b| b.1.len() < quotes.len()) {
            best = Some((info.key.clone(), quotes));
        }
    }
    best.ok_or_else(|| {
        tapedeck::Error::engine(
            "workload",
            format!(
                "{}: the capture holds no bookTicker quotes",
                capture.display()
            ),
        )
    })
}

/// The L2 block: every event of the capture's depth stream (depth snapshot and diffs, trades,
/// quotes), in seq order, each at its receive time made non-decreasing (the capture mixes the
/// exchange's clock and the receiver's).
pub fn capture_l2(capture: &Path) -> Result<(String, Vec<Envelope>)> {
    let mut mem = MemoryStore::new();
    let mut importer = Importer::new(&mut mem, None, None);
    importer.import_file(capture)?;
    importer.finish()?;
    let mut best: Option<(String, Vec<Envelope>)> = None;
    for info in mem.streams()? {
        if info.counts.get("book_delta").copied().unwrap_or(0) == 0 {
            continue;
        }
        let (mut events, mut t) = (Vec::new(), i64::MIN);
        mem.read(&info.key, SeqRange::ALL, &mut |mut e| {
            t = t.max(e.ingested_at);
            e.occurred_at = t;
            events.push(e);
            Ok(())
        })?;
        if best.as_ref().is_none_or(|b| b.1.len() < events.len()) {
            best = Some((info.key.clone(), events));
        }
    }
    best.ok_or_else(|| {
        tapedeck::Error::engine(
            "workload",
            format!("{}: the capture holds no depth diffs", capture.display()),
        )
    })
}

/// Writes (or reuses) the L2 workload store at `out`: the capture's depth, trade and quote
/// events (see [`capture_l2`]) repeated to `events`, as [`quote_workload`] repeats quotes.
pub fn l2_workload(capture: &Path, events: u64, out: &Path) -> Result<Workload> {
    let (stream, block) = capture_l2(capture)?;
    repeated(capture, "l2", stream, block, events, out)
}

/// Writes (or reuses) the workload store at `out`: `quotes` quotes from `capture`.
pub fn quote_workload(capture: &Path, quotes: u64, out: &Path) -> Result<Workload> {
    let (stream, block) = capture_quotes(capture)?;
    repeated(capture, "quotes", stream, block, quotes, out)
}

fn repeated(
    capture: &Path,
    kind: &str,
    stream: String,
    block: Vec<Envelope>,
    quotes: u64,
    out: &Path,
) -> Result<Workload> {
    let t0 = std::time::Instant::now();
    let n = block.len() as i64;
    let (first, last) = (block[0].occurred_at, block[block.len() - 1].occurred_at);
    let span_ns = (last - first) + (last - first) / (n - 1).max(1);
    let mut w = Workload {
        store: out.to_path_buf(),
        stream: stream.clone(),
        quotes,
        block: block.len() as u64,
        span_ns,
        generate_secs: 0.0,
    };
    let spec_path = out.join("workload.json");
    let spec = serde_json::json!({
        "capture": capture.file_name().map(|n| n.to_string_lossy().to_string()),
        "quotes": quotes, "block": w.block, "span_ns": span_ns, "stream": stream, "version": 1,
    });
    // The quote workload's spec is as it was (its stores are reused); others name their kind.
    let spec = if kind == "quotes" {
        spec
    } else {
        let mut s = spec;
        s["kind"] = kind.into();
        s
    };
    let fresh = std::fs::read(&spec_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        == Some(spec.clone());
    if fresh && FileStore::open(out)?.fresh_index()?.is_some() {
        return Ok(w);
    }
    // Only a directory this command made (or an empty or missing one) is replaced.
    let empty = std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none());
    if !empty && !spec_path.exists() {
        return Err(tapedeck::Error::message(
            "bench workload",
            format!(
                "{} is not a workload store (no workload.json); choose an empty or new directory",
                out.display()
            ),
        ));
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| tapedeck::Error::io(out, e))?;
    }
    let mut store = FileStore::create(out, FileStoreOptions::default())?;
    let mut chunk: Vec<Envelope> = Vec::with_capacity(100_000);
    for i in 0..quotes {
        let k = (i / w.block) as i64;
        let src = &block[(i % w.block) as usize];
        let t = src.occurred_at + k * span_ns;
        chunk.push(Envelope::new(
            &stream,
            i + 1,
            t,
            src.instrument.as_deref(),
            src.body.clone(),
        ));
        if chunk.len() == chunk.capacity() {
            store.append(&chunk)?;
            chunk.clear();
        }
    }
    store.append(&chunk)?;
    drop(store);
    tapedeck::store::index::rebuild(out, None)?;
    std::fs::write(&spec_path, format!("{spec}\n"))
        .map_err(|e| tapedeck::Error::io(&spec_path, e))?;
    w.generate_secs = t0.elapsed().as_secs_f64();
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared capture (`$TAPEDECK_SHARED_DIR`, else `../shared` beside the repository);
    /// tests needing it skip, saying so, where it is absent.
    pub fn capture() -> Option<PathBuf> {
        let shared = std::env::var_os("TAPEDECK_SHARED_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            PathBuf::from,
        );
        let p = shared.join("data/binance/spot_btcusdt_20240808.gz");
        p.exists().then_some(p)
    }

    #[test]
    fn the_workload_repeats_the_capture_quotes_with_shifted_times() {
        let Some(cap) = capture() else {
            eprintln!(
                "skipping: ../shared/data/binance/spot_btcusdt_20240808.gz not found (set TAPEDECK_SHARED_DIR)"
            );
            return;
        };
        let dir = std::env::temp_dir().join(format!("td-workload-{}", std::process::id()));
        let w = quote_workload(&cap, 60_000, &dir).unwrap();
        assert_eq!(w.block, 28_040);
        let store = FileStore::open(&dir).unwrap();
        let infos = store.streams().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].counts.get("quote"), Some(&60_000));
        let mut times = Vec::new();
        store
            .read_records(&w.stream, SeqRange::ALL, &mut |_, t, _| {
                times.push(t);
                Ok(())
            })
            .unwrap();
        assert_eq!(times.len(), 60_000);
        assert_eq!(times[28_040] - times[0], w.span_ns);
        assert!(
            times.windows(2).all(|p| p[0] <= p[1]),
            "times never go back"
        );
        let again = quote_workload(&cap, 60_000, &dir).unwrap();
        assert_eq!(again.generate_secs, 0.0, "a matching store is reused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
