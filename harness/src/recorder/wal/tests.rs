//! The WAL's tests: round trips, rotation and trimming, torn tails at every cut, corruption
//! that must be an error, durability claims, and the tail reader.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tapedeck-wal-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn payload(lsn: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (lsn as usize * 31 + i) as u8).collect()
}

fn read_all(wal: &Wal, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    wal.read_from(from, &mut |lsn, p| {
        out.push((lsn, p.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

fn small(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        ..WalOptions::default()
    }
}

/// Three segments of records 1..=25 (9 records of 108 bytes fit in 1024).
fn three_segments(dir: &Path) -> Vec<Segment> {
    let (mut wal, _) = Wal::open(dir, small(1024)).unwrap();
    for lsn in 1..=25 {
        wal.append(&payload(lsn, 100)).unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(wal.segments(), 3);
    list_segments(dir).unwrap()
}

#[test]
fn round_trip_1000_records() {
    let tmp = TempDir::new("roundtrip");
    let size = |lsn: u64| {
        if lsn.is_multiple_of(10) {
            0
        } else {
            (lsn * 7919 % 4000) as usize
        }
    };
    let (mut wal, rec) = Wal::open(&tmp.0, WalOptions::default()).unwrap();
    assert_eq!(
        (rec.first_lsn, rec.next_lsn, rec.records, rec.segments),
        (1, 1, 0, 1)
    );
    for lsn in 1..=1000 {
        assert_eq!(wal.append(&payload(lsn, size(lsn))).unwrap(), lsn);
    }
    assert_eq!(wal.sync().unwrap(), 1000);
    let expected: Vec<_> = (1..=1000).map(|l| (l, payload(l, size(l)))).collect();
    assert_eq!(read_all(&wal, 0), expected);
    let bytes = wal.bytes();
    drop(wal);

    let (wal, rec) = Wal::open(&tmp.0, WalOptions::default()).unwrap();
    let want = Recovery {
        first_lsn: 1,
        next_lsn: 1001,
        records: 1000,
        segments: 1,
        torn: None,
    };
    assert_eq!(rec, want);
    assert_eq!((wal.durable_lsn(), wal.bytes()), (1000, bytes));
    assert_eq!(read_all(&wal, 0), expected);
    assert_eq!(read_all(&wal, 998), expected[997..]);
}

#[test]
fn rotation_read_from_and_trim() {
    let tmp = TempDir::new("rotation");
    let (mut wal, _) = Wal::open(&tmp.0, small(4096)).unwrap();
    for lsn in 1..=100 {
        wal.append(&payload(lsn, 200)).unwrap();
    }
    wal.sync().unwrap();
    let segs = list_segments(&tmp.0).unwrap();
    assert!(segs.len() >= 4, "{} segments", segs.len());
    assert_eq!(wal.segments(), segs.len());
    assert_eq!(segs[0].first_lsn, 1);
    for seg in &segs {
        // The name's LSN is the LSN of the segment's first record.
        let bytes = fs::read(&seg.path).unwrap();
        assert!(bytes.len() as u64 <= 4096);
        let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(crc, record_crc(seg.first_lsn, &payload(seg.first_lsn, 200)));
        assert_eq!(&bytes[24..224], &payload(seg.first_lsn, 200)[..]);
    }
    let b = segs[2].first_lsn;
    let lsns: Vec<u64> = read_all(&wal, b - 1).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lsns, (b - 1..=100).collect::<Vec<_>>());

    assert_eq!(wal.trim(b - 2).unwrap(), 1); // the second segment still holds b - 1
    assert_eq!(wal.trim(b - 1).unwrap(), 1);
    assert_eq!(list_segments(&tmp.0).unwrap()[0].first_lsn, b);
    assert_eq!(read_all(&wal, 0)[0], (b, payload(b, 200)));

    // A record bigger than a segment gets a segment of its own.
    let n = wal.segments();
    assert_eq!(wal.append(&payload(101, 10_000)).unwrap(), 101);
    assert_eq!(wal.segments(), n + 1);
    wal.append(&payload(102, 200)).unwrap();
    assert_eq!(wal.segments(), n + 2);
    wal.sync().unwrap();
    drop(wal);

    let (mut wal, rec) = Wal::open(&tmp.0, small(4096)).unwrap();
    assert_eq!(
        (rec.first_lsn, rec.next_lsn, rec.records),
        (b, 103, 103 - b)
    );
    assert_eq!(read_all(&wal, 101)[0], (101, payload(101, 10_000)));
    // The current segment is never trimmed.
    assert_eq!(wal.trim(u64::MAX).unwrap(), n + 1);
    assert_eq!(wal.segments(), 1);
    assert_eq!(read_all(&wal, 0), vec![(102, payload(102, 200))]);
    drop(wal);
    let (_, rec) = Wal::open(&tmp.0, small(4096)).unwrap();
    assert_eq!(
        (rec.first_lsn, rec.next_lsn, rec.records, rec.segments),
        (102, 103, 1, 1)
    );
}

/// Writes `bytes` as the only segment of a fresh WAL, opens it and checks that exactly
/// `whole` records survive, the rest is quarantined, and appending continues.
fn recover_from(bytes: &[u8], whole: u64, boundary: u64, originals: &[Vec<u8>]) {
    let tmp = TempDir::new("torn");
    fs::create_dir_all(&tmp.0).unwrap();
    let seg = tmp.0.join(segment_name(1));
    fs::write(&seg, bytes).unwrap();
    let (mut wal, rec) = Wal::open(&tmp.0, WalOptions::default()).unwrap();
    assert_eq!(
        (rec.records, rec.next_lsn),
        (whole, whole + 1),
        "cut at {}",
        bytes.len()
    );
    let cut = bytes.len() as u64 - boundary;
    match &rec.torn {
        None => assert_eq!(cut, 0),
        Some(t) => {
            assert_eq!((&t.segment, t.offset, t.bytes), (&seg, boundary, cut));
            let name = format!("quarantine/{}.{boundary}.torn", segment_name(1));
            assert_eq!(t.quarantined_to, tmp.0.join(name));
            assert_eq!(
                fs::read(&t.quarantined_to).unwrap(),
                &bytes[boundary as usize..]
            );
        }
    }
    assert_eq!(fs::metadata(&seg).unwrap().len(), boundary);
    assert_eq!(wal.append(b"after").unwrap(), whole + 1);
    assert_eq!(wal.sync().unwrap(), whole + 1);
    drop(wal);
    let (wal, rec) = Wal::open(&tmp.0, WalOptions::default()).unwrap();
    assert_eq!(rec.torn, None);
    let mut expected: Vec<_> = (1..=whole)
        .map(|l| (l, originals[l as usize - 1].clone()))
        .collect();
    expected.push((whole + 1, b"after".to_vec()));
    assert_eq!(read_all(&wal, 0), expected);
}

#[test]
fn torn_tail_is_quarantined_at_every_cut() {
    let tmp = TempDir::new("torn-src");
    let n = 8;
    let originals: Vec<_> = (1..=n).map(|l| payload(l, 3 * l as usize + 5)).collect();
    let (mut wal, _) = Wal::open(&tmp.0, WalOptions::default()).unwrap();
    for p in &originals {
        wal.append(p).unwrap();
    }
    wal.sync().unwrap();
    let orig = fs::read(tmp.0.join(segment_name(1))).unwrap();
    // bounds[k] = offset of record k + 1; bounds[n] = end of file.
    let mut bounds = vec![HEADER_LEN];
    for p in &originals {
        bounds.push(bounds.last().unwrap() + 8 + p.len() as u64);
    }
    assert_eq!(bounds[n as usize], orig.len() as u64);

    for cut in bounds[n as usize - 2]..orig.len() as u64 {
        let whole = bounds.iter().filter(|&&b| b <= cut).count() as u64 - 1;
        recover_from(
            &orig[..cut as usize],
            whole,
            bounds[whole as usize],
            &originals,
        );
    }
    for garbage in [&[0xab; 11][..], &[0; 8], &[1, 2, 3]] {
        let bytes = [&orig[..], garbage].concat();
        recover_from(&bytes, n, orig.len() as u64, &originals);
    }
    let mut flipped = orig.clone();
    flipped[bounds[n as usize - 1] as usize + 8 + 3] ^= 0xff;
    recover_from(&flipped, n - 1, bounds[n as usize - 1], &originals);
}

#[test]
fn torn_header_of_last_segment_is_quarantined() {
    let tmp = TempDir::new("torn-header");
    three_segments(&tmp.0);
    let stray = tmp.0.join(segment_name(26));
    fs::write(&stray, &MAGIC[..5]).unwrap();
    let (mut wal, rec) = Wal::open(&tmp.0, small(1024)).unwrap();
    assert_eq!((rec.records, rec.next_lsn, rec.segments), (25, 26, 3));
    assert_eq!(rec.torn.as_ref().map(|t| (t.offset, t.bytes)), Some((0, 5)));
    assert!(!stray.exists());
    assert_eq!(wal.append(b"x").unwrap(), 26);

    // The only segment (the older ones trimmed): the log continues at its LSN.
    let tmp = TempDir::new("torn-header-only");
    fs::create_dir_all(&tmp.0).unwrap();
    fs::write(tmp.0.join(segment_name(42)), &MAGIC[..3]).unwrap();
    let (mut wal, rec) = Wal::open(&tmp.0, small(1024)).unwrap();
    assert_eq!((rec.first_lsn, rec.next_lsn, rec.records), (42, 42, 0));
    assert_eq!(wal.append(b"x").unwrap(), 42);
}

fn open_corrupt(dir: &Path) -> (PathBuf, u64, String) {
    match Wal::open(dir, small(1024)) {
        Err(Error::Corrupt {
            path,
            line,
            message,
        }) => (path, line, message),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corruption_in_an_earlier_segment_is_an_error() {
    let tmp = TempDir::new("corrupt");
    let segs = three_segments(&tmp.0);
    let orig = fs::read(&segs[0].path).unwrap();
    let last_len = fs::metadata(&segs[2].path).unwrap().len();
    let mut bytes = orig.clone();
    bytes[124 + 8 + 5] ^= 0x01; // in the second record, at 16 + 108
    fs::write(&segs[0].path, bytes).unwrap();
    let (path, line, message) = open_corrupt(&tmp.0);
    assert_eq!((path, line), (segs[0].path.clone(), 124));
    assert!(
        message.starts_with("byte offset 124: CRC mismatch"),
        "{message}"
    );
    assert_eq!(fs::metadata(&segs[2].path).unwrap().len(), last_len);
    assert!(!tmp.0.join("quarantine").exists());

    // Two whole records swapped: each is intact, but not at its LSN.
    let swapped = [&orig[..16], &orig[124..232], &orig[16..124], &orig[232..]].concat();
    fs::write(&segs[0].path, swapped).unwrap();
    let (_, line, message) = open_corrupt(&tmp.0);
    assert_eq!(line, 16, "{message}");
}

#[test]
fn missing_segment_is_an_error() {
    let tmp = TempDir::new("gap");
    let segs = three_segments(&tmp.0);
    fs::remove_file(&segs[1].path).unwrap();
    let (path, line, message) = open_corrupt(&tmp.0);
    assert_eq!((path, line), (segs[2].path.clone(), 0));
    let (from, to) = (segs[1].first_lsn, segs[2].first_lsn - 1);
    assert!(
        message.contains(&format!("LSNs {from}..={to} are missing")),
        "{message}"
    );
}

#[test]
fn unsynced_records_are_not_durable() {
    let tmp = TempDir::new("unsynced");
    let (mut wal, _) = Wal::open(&tmp.0, WalOptions::default()).unwrap();
    assert_eq!(wal.sync().unwrap(), 0);
    for lsn in 1..=5 {
        wal.append(&payload(lsn, 10)).unwrap();
    }
    assert_eq!(wal.durable_lsn(), 0);
    assert!(read_all(&wal, 0).is_empty());
    assert_eq!(wal.sync().unwrap(), 5);
    wal.append(&payload(6, 10)).unwrap();
    assert_eq!((wal.durable_lsn(), wal.next_lsn()), (5, 7));
    assert_eq!(read_all(&wal, 0).len(), 5);
    drop(wal);
    let (mut wal, rec) = Wal::open(&tmp.0, small(2 << 20)).unwrap();
    assert!(rec.torn.is_none() && rec.records >= 5);
    // Six records of 300 KiB fill the first segment; rotating syncs it. Past the buffer
    // limit the next four are written to the second one, but they are not durable.
    let first = wal.next_lsn();
    for lsn in first..first + 10 {
        wal.append(&payload(lsn, 300 << 10)).unwrap();
    }
    assert_eq!((wal.segments(), wal.durable_lsn()), (2, first + 5));
    let second = tmp.0.join(segment_name(first + 6));
    assert!(fs::metadata(second).unwrap().len() > 1 << 20);
    let read = read_all(&wal, first);
    assert_eq!(read.last().map(|r| r.0), Some(first + 5));
    drop(wal);
    let (_, rec) = Wal::open(&tmp.0, small(2 << 20)).unwrap();
    assert!(rec.torn.is_none() && rec.next_lsn >= first);
}

#[test]
fn oversized_record_is_refused() {
    let tmp = TempDir::new("oversized");
    let opts = WalOptions {
        segment_bytes: 64,
        max_record_bytes: 100,
    };
    let (mut wal, _) = Wal::open(&tmp.0, opts.clone()).unwrap();
    match wal.append(&[7; 101]) {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
            assert!(
                source
                    .to_string()
                    .contains("101 bytes exceeds max_record_bytes 100")
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        (wal.next_lsn(), wal.bytes(), wal.sync().unwrap()),
        (1, HEADER_LEN, 0)
    );
    // Bigger than a segment: it goes into the empty one, the next into a new one.
    assert_eq!(wal.append(&[7; 100]).unwrap(), 1);
    assert_eq!(wal.segments(), 1);
    assert_eq!(wal.append(&[7; 100]).unwrap(), 2);
    assert_eq!((wal.segments(), wal.sync().unwrap()), (2, 2));
    drop(wal);
    let (_, rec) = Wal::open(&tmp.0, opts).unwrap();
    assert_eq!(rec.records, 2);
}

#[test]
fn a_tail_follows_the_writer_across_rotations_up_to_the_durable_lsn() {
    let dir = TempDir::new("tail");
    let (mut wal, _) = Wal::open(&dir.0, small(4096)).unwrap();
    let mut tail = WalTail::new(&dir.0, 1);
    let mut seen = Vec::new();
    for round in 0..5u64 {
        for lsn in round * 100 + 1..=round * 100 + 100 {
            assert_eq!(
                wal.append(&payload(lsn, (lsn % 300) as usize)).unwrap(),
                lsn
            );
        }
        // What rotation made durable can be read before the sync; nothing past it.
        for durable in [wal.durable_lsn(), wal.sync().unwrap()] {
            while let Some((lsn, p)) = tail.next(durable).unwrap() {
                assert!(lsn <= durable);
                assert_eq!(p, payload(lsn, (lsn % 300) as usize));
                seen.push(lsn);
            }
            assert_eq!(tail.next_lsn(), durable + 1);
        }
    }
    assert!(wal.segments() > 3, "rotated");
    assert_eq!(seen, (1..=500).collect::<Vec<_>>());
    // A tail started mid-log skips to its record.
    let mut mid = WalTail::new(&dir.0, 377);
    assert_eq!(mid.next(500).unwrap().unwrap().0, 377);
}
