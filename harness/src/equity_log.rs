//! Equity logs: one stream's marked equity after its events, spooled to a file, so that the
//! drawdown of several streams' *summed* equity can be computed exactly, by event time, in
//! memory that does not grow with the events ([`combined_drawdown`]).
//!
//! Invariants:
//! - A log is a sequence of 16-byte records, `(time_ns: i64, equity: f64)` little-endian, in
//!   event order (time never decreases). It holds every change of equity, and the last event
//!   of each stretch where equity stayed the same (and the stream's last event): enough for a
//!   step function that equals the stream's equity at every event, whose drawdown and
//!   drawdown duration are those of the per-event curve.
//! - The merge reads every log once, in order, holding one record per log; at most
//!   [`FAN_IN`] files are open at once (more logs are merged in rounds into logs of partial
//!   sums, which are logs too). Ties in time are taken together: the summed curve has one
//!   point per distinct event time.
//! - The sum is kept incrementally and recomputed from the parts every [`RESUM`] points, so
//!   rounding cannot drift; the order of operations depends only on the inputs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Logs merged at once.
pub const FAN_IN: usize = 128;
/// Points between full recomputations of the sum.
const RESUM: u64 = 4096;
const RECORD: usize = 16;

/// Writes one stream's equity log. Write errors are kept and returned by [`Self::finish`]
/// (the venue calls [`Self::push`] once per event and cannot stop for them).
#[derive(Debug)]
pub struct EquityLogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// The last record written.
    written: Option<(i64, f64)>,
    /// The last point pushed, if it was not written.
    held: Option<(i64, f64)>,
    error: Option<std::io::Error>,
}

impl EquityLogWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(EquityLogWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, f),
            written: None,
            held: None,
            error: None,
        })
    }

    fn write(&mut self, p: (i64, f64)) {
        if self.error.is_some() {
            return;
        }
        let mut rec = [0u8; RECORD];
        rec[..8].copy_from_slice(&p.0.to_le_bytes());
        rec[8..].copy_from_slice(&p.1.to_le_bytes());
        if let Err(e) = self.out.write_all(&rec) {
            self.error = Some(e);
        }
        self.written = Some(p);
    }

    /// Equity after an event at `t`.
    #[inline]
    pub fn push(&mut self, t: i64, equity: f64) {
        match self.written {
            Some((_, e)) if e.to_bits() == equity.to_bits() => self.held = Some((t, equity)),
            _ => {
                // The stretch before this change ends at the held point.
                if let Some(h) = self.held.take() {
                    self.write(h);
                }
                self.write((t, equity));
            }
        }
    }

    pub fn finish(mut self) -> Result<EquityLog> {
        if let Some(h) = self.held.take() {
            self.write(h);
        }
        if let Some(e) = self.error.take() {
            return Err(Error::io(&self.path, e));
        }
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(EquityLog {
            path: self.path.clone(),
        })
    }
}

/// A finished equity log; the file is removed when this is dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct EquityLog {
    path: PathBuf,
}

impl EquityLog {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the log to `to` (same file system), where it stays: a shard keeps its streams'
    /// logs for the merge's summed drawdown.
    pub fn keep(self, to: &Path) -> Result<()> {
        std::fs::rename(&self.path, to).map_err(|e| Error::io(to, e))
        // Dropping `self` now removes nothing: the file is no longer at its path.
    }
}

impl Drop for EquityLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one log's records in order.
struct LogReader {
    path: PathBuf,
    input: BufReader<File>,
    head: Option<(i64, f64)>,
}

impl LogReader {
    fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut r = LogReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(64 * 1024, f),
            head: None,
        };
        r.advance()?;
        Ok(r)
    }

    fn advance(&mut self) -> Result<()> {
        let mut rec = [0u8; RECORD];
        self.head = match self.input.read_exact(&mut rec) {
            Ok(()) => Some((
                i64::from_le_bytes(rec[..8].try_into().expect("8 bytes")),
                f64::from_le_bytes(rec[8..].try_into().expect("8 bytes")),
            )),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        Ok(())
    }
}

/// Merges `logs` by time and calls `each(t, total)` once per distinct time with the sum of
/// every log's latest equity (0 before a log's first record).
fn merge(logs: &[&Path], each: &mut dyn FnMut(i64, f64)) -> Result<()> {
    let mut readers = logs
        .iter()
        .map(|p| LogReader::open(p))
        .collect::<Result<Vec<_>>>()?;
    let mut latest = vec![0.0f64; readers.len()];
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = readers
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.head.map(|h| Reverse((h.0, i))))
        .collect();
    let (mut total, mut points) = (0.0f64, 0u64);
    while let Some(&Reverse((t, _))) = heap.peek() {
        while let Some(&Reverse((tt, i))) = heap.peek() {
            if tt != t {
                break;
            }
            heap.pop();
            let r = &mut readers[i];
            while let Some((rt, e)) = r.head {
                if rt != t {
                    break;
                }
                total += e - latest[i];
                latest[i] = e;
                r.advance()?;
            }
            if let Some((rt, _)) = r.head {
                heap.push(Reverse((rt, i)));
            }
        }
        points += 1;
        if points.is_multiple_of(RESUM) {
            total = latest.iter().sum();
        }
        each(t, total);
    }
    Ok(())
}

/// The maximum drawdown of the summed curve and its longest time below a peak, measured as
/// a stream's own are ([`crate::stats::StatsTracker::mark`]: the peak starts at 0 and at the
/// first point's time). `scratch` holds the partial sums when there are more than [`FAN_IN`]
/// logs.
pub fn combined_drawdown(logs: &[&Path], scratch: &Path) -> Result<(f64, i64)> {
    let mut round: Vec<EquityLog> = Vec::new();
    let mut paths: Vec<PathBuf> = logs.iter().map(|p| p.to_path_buf()).collect();
    let mut n = 0;
    while paths.len() > FAN_IN {
        let mut next = Vec::new();
        for chunk in paths.chunks(FAN_IN) {
            n += 1;
            let mut w = EquityLogWriter::create(&scratch.join(format!("sum-{n}.equity")))?;
            let refs: Vec<&Path> = chunk.iter().map(PathBuf::as_path).collect();
            merge(&refs, &mut |t, e| w.push(t, e))?;
            next.push(w.finish()?);
        }
        paths = next.iter().map(|l| l.path().to_path_buf()).collect();
        round = next; // drops (removes) the previous round's partial sums
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (mut peak, mut peak_t, mut first) = (0.0f64, 0i64, true);
    let (mut max_dd, mut max_dd_ns) = (0.0f64, 0i64);
    merge(&refs, &mut |t, e| {
        if first {
            first = false;
            peak_t = t;
        }
        if e >= peak {
            peak = e;
            peak_t = t;
        } else {
            max_dd = max_dd.max(peak - e);
            max_dd_ns = max_dd_ns.max(t - peak_t);
        }
    })?;
    drop(round);
    Ok((max_dd, max_dd_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path, name: &str, points: &[(i64, f64)]) -> EquityLog {
        let mut w = EquityLogWriter::create(&dir.join(name)).unwrap();
        for &(t, e) in points {
            w.push(t, e);
        }
        w.finish().unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("tapedeck-equity-log-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_log_keeps_changes_and_the_ends_of_flat_stretches() {
        let d = scratch("flat");
        let l = log(
            &d,
            "a",
            &[(1, 0.0), (2, 5.0), (3, 5.0), (4, 5.0), (5, 2.0), (6, 2.0)],
        );
        let bytes = std::fs::read(l.path()).unwrap();
        let recs: Vec<(i64, f64)> = bytes
            .chunks(16)
            .map(|c| {
                (
                    i64::from_le_bytes(c[..8].try_into().unwrap()),
                    f64::from_le_bytes(c[8..].try_into().unwrap()),
                )
            })
            .collect();
        assert_eq!(recs, [(1, 0.0), (2, 5.0), (4, 5.0), (5, 2.0), (6, 2.0)]);
        let path = l.path().to_path_buf();
        drop(l);
        assert!(!path.exists(), "a dropped log removes its file");
        std::fs::remove_dir_all(d).unwrap();
    }

    // See: review of #15, "combine reports the worst single stream's drawdown".
    #[test]
    fn the_summed_curve_has_its_own_drawdown_not_the_worst_streams() {
        let d = scratch("sum");
        // A falls by 10 while B rises by 10 at the same times: together, flat. A alone has a
        // drawdown of 10.
        let a = log(&d, "a", &[(1, 0.0), (2, -10.0), (3, -10.0)]);
        let b = log(&d, "b", &[(1, 0.0), (2, 10.0), (3, 10.0)]);
        assert_eq!(combined_drawdown(&[a.path()], &d).unwrap(), (10.0, 2));
        assert_eq!(
            combined_drawdown(&[a.path(), b.path()], &d).unwrap(),
            (0.0, 0)
        );
        // Two streams that each dip by 4, at different times, and both at t = 6: 4 + 4.
        let c = log(&d, "c", &[(1, 4.0), (3, 0.0), (6, 0.0), (7, 4.0)]);
        let e = log(&d, "e", &[(2, 4.0), (6, 0.0), (9, 4.0)]);
        // Sum: 4 @1, 8 @2, 4 @3, 0 @6, 4 @7, 8 @9: from the peak 8 at t=2 down to 0 at t=6,
        // below it until t=9.
        assert_eq!(
            combined_drawdown(&[c.path(), e.path()], &d).unwrap(),
            (8.0, 5)
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn more_logs_than_the_fan_in_merge_in_rounds_to_the_same_figures() {
        let d = scratch("rounds");
        // FAN_IN * 2 + 3 streams, stream i at equity -(i % 7) at time i, back to 0 at time
        // 1000 + i: the sum's trough is at the last dip, before the first recovery.
        let n = FAN_IN * 2 + 3;
        let logs: Vec<EquityLog> = (0..n)
            .map(|i| {
                let t = i as i64;
                log(
                    &d,
                    &format!("s{i}"),
                    &[(t, -((i % 7) as f64)), (1000 + t, 0.0)],
                )
            })
            .collect();
        let paths: Vec<&Path> = logs.iter().map(EquityLog::path).collect();
        let want: f64 = (0..n).map(|i| (i % 7) as f64).sum();
        let (dd, dur) = combined_drawdown(&paths, &d).unwrap();
        assert_eq!(dd, want);
        // The peak is 0 at t=0 (stream 0 dips by 0); the sum is back at 0 when the last
        // stream recovers, at 1000 + n - 1 (its dip, (n - 1) % 7, is not 0): below the peak
        // until the point before, 1000 + n - 2.
        assert_eq!((n - 1) % 7, 6);
        assert_eq!(dur, 1000 + n as i64 - 2);
        drop(logs);
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert!(left.is_empty(), "partial sums and logs removed: {left:?}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
