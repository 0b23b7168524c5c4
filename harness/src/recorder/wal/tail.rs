//! [`WalTail`]: a sink's reader of the WAL, following the writer.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{
    At, HEADER_LEN, MAGIC, RECORD_HEADER_LEN, WalOptions, corrupt, list_segments, record_crc,
    segment_name,
};
use crate::error::Result;

/// Follows a WAL from another thread than its writer's (a sink): reads the records up to the
/// durable LSN the writer published, across segment rotations, one record in memory at a
/// time. The writer never trims a segment a tail is still reading (it trims below what every
/// sink stored).
#[derive(Debug)]
pub struct WalTail {
    dir: PathBuf,
    next: u64,
    max_record: u32,
    cur: Option<(BufReader<File>, PathBuf)>,
}

impl WalTail {
    /// A tail whose first record is `from`.
    pub fn new(dir: &Path, from: u64) -> WalTail {
        WalTail {
            dir: dir.to_path_buf(),
            next: from.max(1),
            max_record: WalOptions::default().max_record_bytes,
            cur: None,
        }
    }

    /// The LSN the next record read will have.
    pub fn next_lsn(&self) -> u64 {
        self.next
    }

    /// The next record if its LSN is at or below `durable`.
    pub fn next(&mut self, durable: u64) -> Result<Option<(u64, Vec<u8>)>> {
        if self.next > durable {
            return Ok(None);
        }
        let lsn = self.next;
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        loop {
            if self.cur.is_none() {
                self.cur = Some(self.open_at(lsn)?);
            }
            let (reader, path) = self.cur.as_mut().expect("opened");
            match read_full(reader, &mut header).at(path)? {
                0 => {
                    // The segment ended: the record is the first of the next one.
                    self.cur = None;
                    let (reader, path) = self.open_first(lsn)?;
                    self.cur = Some((reader, path));
                    continue;
                }
                8 => break,
                n => {
                    return Err(corrupt(
                        path,
                        0,
                        format!("record of LSN {lsn}: {n} of 8 header bytes"),
                    ));
                }
            }
        }
        let (reader, path) = self.cur.as_mut().expect("opened");
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > self.max_record {
            return Err(corrupt(
                path,
                0,
                format!("record of LSN {lsn}: length {len}"),
            ));
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload).at(path)?;
        if record_crc(lsn, &payload) != crc {
            return Err(corrupt(
                path,
                0,
                format!("CRC mismatch in the record of LSN {lsn}"),
            ));
        }
        self.next += 1;
        Ok(Some((lsn, payload)))
    }

    /// Opens the segment holding `lsn` and skips to it.
    fn open_at(&self, lsn: u64) -> Result<(BufReader<File>, PathBuf)> {
        let seg = list_segments(&self.dir)?
            .into_iter()
            .rev()
            .find(|s| s.first_lsn <= lsn)
            .ok_or_else(|| {
                corrupt(
                    &self.dir,
                    0,
                    format!("no segment holds LSN {lsn} (trimmed?)"),
                )
            })?;
        let (mut reader, path) = open_segment(&seg.path, seg.first_lsn)?;
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        for _ in seg.first_lsn..lsn {
            reader.read_exact(&mut header).at(&path)?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            reader.seek_relative(i64::from(len)).at(&path)?;
        }
        Ok((reader, path))
    }

    /// Opens the segment that starts at `lsn` (the writer rotated there).
    fn open_first(&self, lsn: u64) -> Result<(BufReader<File>, PathBuf)> {
        let path = self.dir.join(segment_name(lsn));
        if !path.exists() {
            return Err(corrupt(
                &self.dir,
                0,
                format!("LSN {lsn} is durable but no segment starts there"),
            ));
        }
        open_segment(&path, lsn)
    }
}

/// Opens a segment for reading past its header, checking the header names `first_lsn`.
fn open_segment(path: &Path, first_lsn: u64) -> Result<(BufReader<File>, PathBuf)> {
    let mut reader = BufReader::with_capacity(256 << 10, File::open(path).at(path)?);
    let mut header = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut header).at(path)?;
    if header[..8] != MAGIC || header[8..] != first_lsn.to_le_bytes() {
        return Err(corrupt(path, 0, "not the header of the segment expected"));
    }
    Ok((reader, path.to_path_buf()))
}

/// Reads into `buf` until it is full or the input ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
