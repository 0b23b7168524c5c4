//! Write-ahead log of the recorder service.
//!
//! The recorder gives each event its seq, appends it here and acknowledges the sender only once
//! [`Wal::sync`] has returned an LSN at or past it. Records are trimmed only after every sink has
//! stored them. On start, [`Wal::open`] recovers the log and [`Wal::read_from`] replays it.
//!
//! # Format
//!
//! A WAL is a directory of segment files `wal-<first LSN, 20 digits>.seg`. A segment is a 16-byte
//! header, magic `TDWAL\0\x01\0` then the segment's first LSN (u64 LE), followed by records:
//!
//! ```text
//! +-------------+-------------+--------------------+
//! | len: u32 LE | crc: u32 LE | payload: len bytes |
//! +-------------+-------------+--------------------+
//! crc = CRC32C(LSN as u64 LE ++ payload)
//! ```
//!
//! A record's LSN is not stored: it is the segment's first LSN plus the record's index. As the
//! CRC covers the LSN, a record found at the wrong position fails its check. LSNs count up from 1
//! without gaps across segments.
//!
//! # Guarantees
//!
//! - An appended record is durable once `sync` has returned an LSN >= its LSN.
//! - Recovery keeps every record that was synced. A torn tail (an incomplete or bad record in the
//!   last segment, left by a crash mid-write) is copied to `quarantine/`, then cut off: it is
//!   quarantined, never silently dropped. Damage anywhere else is an [`Error::Corrupt`].
//! - After a failed write or fsync the `Wal` refuses to write on: what reached the disk is
//!   unknown, and only reopening it (which recovers) is safe.
//!
//! # Not done here
//!
//! No concurrent writers: the recorder holds one `Wal` behind its sequencer and callers
//! serialize. Dropping a `Wal` does not flush: records appended since the last `sync` may be lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod tail;
pub use tail::WalTail;

const MAGIC: [u8; 8] = *b"TDWAL\x00\x01\x00";
const HEADER_LEN: u64 = 16;
const RECORD_HEADER_LEN: u64 = 8;
/// Appends are buffered in memory; past this many bytes the buffer is written (not fsynced).
const BUFFER_LIMIT: usize = 1 << 20;
/// Slice-by-16 tables (16 KiB): several times the bytewise table's speed on the sequencer's path.
static CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Rotate to a new segment before a record would take the current one past this size.
    pub segment_bytes: u64,
    /// Appends of larger payloads are refused.
    pub max_record_bytes: u32,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            max_record_bytes: 16 << 20,
        }
    }
}

/// What [`Wal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// LSN of the oldest record kept, or `next_lsn` if there is none.
    pub first_lsn: u64,
    pub next_lsn: u64,
    pub records: u64,
    pub segments: usize,
    pub torn: Option<TornTail>,
}

/// The tail cut off the last segment at recovery, and where its bytes were kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub quarantined_to: PathBuf,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first_lsn: u64,
    /// Records in the segment, for the current one including those still buffered.
    records: u64,
    /// Bytes in the file, the buffer not included.
    len: u64,
}

impl Segment {
    /// The LSN after the segment's last record.
    fn end_lsn(&self) -> u64 {
        self.first_lsn + self.records
    }
}

#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// Oldest first, never empty; the last is the segment being written.
    segments: Vec<Segment>,
    /// The last segment, opened for appending.
    file: File,
    buf: Vec<u8>,
    next_lsn: u64,
    written_lsn: u64,
    durable_lsn: u64,
    failed: bool,
}

impl Wal {
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Recovery)> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).at(dir)?;
            // The new directory's own name must survive a crash, like the segments in it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let mut segments = list_segments(dir)?;
        let torn_at = validate(&mut segments, opts.max_record_bytes)?;

        // Only now that all else is known good: quarantine a torn tail, then cut it off.
        let (mut torn, mut new_first_lsn) = (None, 1);
        if let Some(offset) = torn_at {
            let seg = segments.last_mut().expect("a torn tail is in a segment");
            let quarantined_to = quarantine(dir, &seg.path, offset)?;
            let (segment, bytes) = (seg.path.clone(), seg.len - offset);
            torn = Some(TornTail {
                segment,
                offset,
                bytes,
                quarantined_to,
            });
            if offset == 0 {
                // Even the header is torn: the segment never held a record.
                fs::remove_file(&seg.path).at(&seg.path)?;
                new_first_lsn = seg.first_lsn;
                segments.pop();
            } else {
                open_append(&seg.path)?.set_len(offset).at(&seg.path)?;
                seg.len = offset;
            }
        }
        let file = match segments.last() {
            Some(seg) => {
                let file = open_append(&seg.path)?;
                // The records found may have been written but never fsynced by a process that
                // crashed (the OS did not). They are about to be replayed and called durable, so
                // make them so, along with a truncation or removal above.
                file.sync_all().at(&seg.path)?;
                sync_dir(dir)?;
                file
            }
            None => {
                let (seg, file) = create_segment(dir, new_first_lsn)?;
                segments.push(seg);
                file
            }
        };

        let next_lsn = segments.last().expect("a current segment").end_lsn();
        let recovery = Recovery {
            first_lsn: segments[0].first_lsn,
            next_lsn,
            records: segments.iter().map(|s| s.records).sum(),
            segments: segments.len(),
            torn,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            segments,
            file,
            buf: Vec::new(),
            next_lsn,
            written_lsn: next_lsn - 1,
            durable_lsn: next_lsn - 1,
            failed: false,
        };
        Ok((wal, recovery))
    }

    /// Buffers one record and returns its LSN. It is durable only once `sync` has returned.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        self.check_healthy()?;
        let max = self.opts.max_record_bytes;
        if payload.len() > max as usize {
            let msg = format!(
                "record of {} bytes exceeds max_record_bytes {max}",
                payload.len()
            );
            let err = io::Error::new(io::ErrorKind::InvalidInput, msg);
            return Err(Error::io(&self.dir, err));
        }
        let record_len = RECORD_HEADER_LEN + payload.len() as u64;
        let current = self.segments.last().expect("a current segment");
        let current_len = current.len + self.buf.len() as u64;
        // A record bigger than a segment still gets a segment of its own.
        if current.records > 0 && current_len + record_len > self.opts.segment_bytes {
            self.rotate()?;
        }
        let lsn = self.next_lsn;
        let crc = record_crc(lsn, payload);
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.next_lsn += 1;
        self.segments.last_mut().expect("a current segment").records += 1;
        if self.buf.len() > BUFFER_LIMIT {
            self.write_buffer()?;
        }
        Ok(lsn)
    }

    /// Group commit: writes the buffer, fsyncs, and returns the durable LSN (0 if none).
    pub fn sync(&mut self) -> Result<u64> {
        self.check_healthy()?;
        self.sync_current()?;
        Ok(self.durable_lsn)
    }

    pub fn durable_lsn(&self) -> u64 {
        self.durable_lsn
    }

    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Bytes of all segment files, including the records still buffered.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum::<u64>() + self.buf.len() as u64
    }

    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Deletes the segments all of whose records have LSN <= `upto`, never the current one.
    /// Returns how many were removed.
    pub fn trim(&mut self, upto: u64) -> Result<usize> {
        let mut removed = 0;
        // Oldest first, so a crash half-way still leaves a log without gaps.
        while self.segments.len() > 1 && self.segments[0].end_lsn() <= upto.saturating_add(1) {
            let path = &self.segments[0].path;
            fs::remove_file(path).at(path)?;
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            // Make the removals durable, so a restart does not find and replay them again.
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Calls `f` with each durable record of LSN >= `from`, in order, reading the files record
    /// by record.
    pub fn read_from(&self, from: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        let (durable, max) = (self.durable_lsn, self.opts.max_record_bytes);
        for seg in &self.segments {
            if seg.first_lsn > durable {
                break;
            }
            if seg.end_lsn() <= from {
                continue;
            }
            let scan = scan_records(seg, max, &mut |lsn, payload| {
                if lsn > durable {
                    return Ok(false); // written, but not yet synced
                }
                if lsn >= from {
                    f(lsn, payload)?;
                }
                Ok(true)
            })?;
            if let Some(reason) = scan.bad {
                return Err(corrupt(&seg.path, scan.end, reason));
            }
        }
        Ok(())
    }

    fn check_healthy(&self) -> Result<()> {
        if !self.failed {
            return Ok(());
        }
        let msg = "an earlier write or fsync of this WAL failed; reopen it to recover";
        Err(Error::io(&self.dir, io::Error::other(msg)))
    }

    /// Writes the buffered records to the current segment, without fsync.
    fn write_buffer(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Until the write completes, the file may hold part of a record.
        self.failed = true;
        let seg = self.segments.last_mut().expect("a current segment");
        self.file.write_all(&self.buf).at(&seg.path)?;
        seg.len += self.buf.len() as u64;
        self.buf.clear();
        self.written_lsn = self.next_lsn - 1;
        self.failed = false;
        Ok(())
    }

    fn sync_current(&mut self) -> Result<()> {
        self.write_buffer()?;
        if self.durable_lsn == self.written_lsn {
            return Ok(());
        }
        // The fsync that makes appended records durable: only after it may they be acknowledged.
        // If it fails, the kernel may have dropped the dirty pages and a retry could "succeed"
        // without them, so the Wal stays failed.
        self.failed = true;
        let seg = self.segments.last().expect("a current segment");
        self.file.sync_data().at(&seg.path)?;
        self.durable_lsn = self.written_lsn;
        self.failed = false;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        // The old segment must be whole on disk before a newer one exists: recovery treats only
        // the last segment as possibly torn.
        self.sync_current()?;
        let (seg, file) = create_segment(&self.dir, self.next_lsn)?;
        self.segments.push(seg);
        self.file = file; // closes the old segment
        Ok(())
    }
}

/// Attaches the path to an I/O error.
trait At<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

fn record_crc(lsn: u64, payload: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&lsn.to_le_bytes());
    digest.update(payload);
    digest.finalize()
}

fn corrupt(path: &Path, offset: u64, message: impl std::fmt::Display) -> Error {
    let message = format!("byte offset {offset}: {message}");
    Error::Corrupt {
        path: path.to_path_buf(),
        line: offset,
        message,
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new().append(true).open(path).at(path)
}

fn segment_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.seg")
}

/// The segment files of `dir`, in LSN order, their records not yet counted.
fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let digits = name
            .to_str()
            .and_then(|n| n.strip_prefix("wal-")?.strip_suffix(".seg"));
        let digits = digits.filter(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()));
        let Some(first_lsn) = digits.and_then(|d| d.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let len = entry.metadata().at(&path)?.len();
        segments.push(Segment {
            path,
            first_lsn,
            records: 0,
            len,
        });
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

/// Creates a segment with its header. The file is fsynced so the header is on disk, then the
/// directory so the file's name is: from then on a crash can lose only unsynced records.
fn create_segment(dir: &Path, first_lsn: u64) -> Result<(Segment, File)> {
    let path = dir.join(segment_name(first_lsn));
    let create = || -> io::Result<File> {
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(&[&MAGIC[..], &first_lsn.to_le_bytes()].concat())?;
        file.sync_all()?;
        Ok(file)
    };
    let file = create().at(&path)?;
    sync_dir(dir)?;
    Ok((
        Segment {
            path,
            first_lsn,
            records: 0,
            len: HEADER_LEN,
        },
        file,
    ))
}

/// Checks every segment and counts its records, changing nothing. Returns the offset of a torn
/// tail in the last segment (0 if its header is torn); damage anywhere else is an error.
fn validate(segments: &mut [Segment], max_record: u32) -> Result<Option<u64>> {
    for i in 0..segments.len() {
        let (seg, last) = (&segments[i], i + 1 == segments.len());
        if seg.len < HEADER_LEN && last {
            return Ok(Some(0));
        }
        check_header(seg)?;
        if i > 0 {
            check_continuity(&segments[i - 1], seg)?;
        }
        let scan = scan_records(seg, max_record, &mut |_, _| Ok(true))?;
        segments[i].records = scan.records;
        if let Some(reason) = scan.bad {
            if last {
                return Ok(Some(scan.end));
            }
            return Err(corrupt(&segments[i].path, scan.end, reason));
        }
    }
    Ok(None)
}

fn check_header(seg: &Segment) -> Result<()> {
    let mut header = [0u8; HEADER_LEN as usize];
    if seg.len < HEADER_LEN {
        return Err(corrupt(
            &seg.path,
            0,
            format!("{} bytes, less than a header", seg.len),
        ));
    }
    File::open(&seg.path)
        .and_then(|mut f| f.read_exact(&mut header))
        .at(&seg.path)?;
    if header[..8] != MAGIC {
        return Err(corrupt(
            &seg.path,
            0,
            "bad magic: not a Tapedeck WAL segment",
        ));
    }
    let lsn = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    if lsn != seg.first_lsn || lsn == 0 {
        let msg = format!(
            "first LSN {lsn} (file name: {}; LSNs start at 1)",
            seg.first_lsn
        );
        return Err(corrupt(&seg.path, 8, msg));
    }
    Ok(())
}

fn check_continuity(prev: &Segment, seg: &Segment) -> Result<()> {
    let (expected, first) = (prev.end_lsn(), seg.first_lsn);
    let prev = prev.path.file_name().unwrap_or_default().to_string_lossy();
    let msg = match first.cmp(&expected) {
        std::cmp::Ordering::Equal => return Ok(()),
        std::cmp::Ordering::Greater => {
            let missing = format!("LSNs {expected}..={} are missing", first - 1);
            format!("segment starts at LSN {first} but {prev} ends before {expected}: {missing}")
        }
        std::cmp::Ordering::Less => {
            format!(
                "segment starts at LSN {first} but {prev} holds LSNs up to {}",
                expected - 1
            )
        }
    };
    Err(corrupt(&seg.path, 0, msg))
}

/// Copies `segment[offset..]` to `<dir>/quarantine/<name>.<offset>.torn`, durably, before the
/// caller cuts those bytes off the segment.
fn quarantine(dir: &Path, segment: &Path, offset: u64) -> Result<PathBuf> {
    let qdir = dir.join("quarantine");
    fs::create_dir_all(&qdir).at(&qdir)?;
    sync_dir(dir)?; // the quarantine directory's name
    let name = segment.file_name().unwrap_or_default().to_string_lossy();
    let target = qdir.join(format!("{name}.{offset}.torn"));
    let mut src = File::open(segment).at(segment)?;
    src.seek(SeekFrom::Start(offset)).at(segment)?;
    let copy = File::create(&target).and_then(|mut dst| {
        io::copy(&mut src, &mut dst)?;
        dst.sync_all() // the copy must be on disk before the original is cut off
    });
    copy.at(&target)?;
    sync_dir(&qdir)?; // and so must its name
    Ok(target)
}

struct Scan {
    records: u64,
    /// Offset after the last good record: where a bad one starts.
    end: u64,
    bad: Option<String>,
}

/// Reads and checks the records of a segment, from just after its header up to `seg.len`,
/// handing each to `f` until it returns false. Stops at the first bad record. Only one record
/// is held in memory at a time.
fn scan_records(
    seg: &Segment,
    max_record: u32,
    f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>,
) -> Result<Scan> {
    let path = &seg.path;
    let mut file = File::open(path).at(path)?;
    file.seek(SeekFrom::Start(HEADER_LEN)).at(path)?;
    let mut reader = BufReader::new(file);
    let mut scan = Scan {
        records: 0,
        end: HEADER_LEN,
        bad: None,
    };
    let (mut header, mut payload) = ([0u8; RECORD_HEADER_LEN as usize], Vec::new());
    while scan.end < seg.len {
        let lsn = seg.first_lsn + scan.records;
        let left = seg.len - scan.end;
        if left < RECORD_HEADER_LEN {
            scan.bad = Some(format!("incomplete record header: {left} of 8 bytes"));
            break;
        }
        reader.read_exact(&mut header).at(path)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > max_record {
            scan.bad = Some(format!(
                "record length {len} exceeds max_record_bytes {max_record}"
            ));
            break;
        }
        if u64::from(len) > left - RECORD_HEADER_LEN {
            let have = left - RECORD_HEADER_LEN;
            scan.bad = Some(format!("incomplete record: {have} of {len} payload bytes"));
            break;
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).at(path)?;
        if record_crc(lsn, &payload) != crc {
            scan.bad = Some(format!("CRC mismatch in the record of LSN {lsn}"));
            break;
        }
        scan.records += 1;
        scan.end += RECORD_HEADER_LEN + u64::from(len);
        if !f(lsn, &payload)? {
            break;
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests;
