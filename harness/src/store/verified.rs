//! Verification stamps: which content checksums of the index's freshness check have already
//! been checked against the bytes, so that a reader does not hash the whole log again.
//!
//! A stamp records, for one file, the sha256 it was found to have and what the kernel changes
//! whenever the file's bytes change: device, inode, size, mtime and ctime (nanoseconds). A file
//! whose stat still equals its stamp is taken to hold the bytes the stamp checked; any write, a
//! same-size edit included, moves its ctime (which no user call can set back), and a copy or a
//! restore is another inode. A file is stamped only after its checksum matched, when its stat
//! did not change while it was hashed, and when its ctime is [`SETTLED`] older than the check
//! began (a write in the same clock tick as the check could otherwise leave the stamp equal:
//! git's "racy clean" problem, avoided the same way).
//!
//! The stamps live in `index/verified.json`, rewritten (atomically) only when they change. They
//! are a cache: a missing, unreadable or unwritable file means hashing again, never an error.
//! What a stamp cannot see is a change below the file system (a bit flipped on disk):
//! `tapedeck fsck` always hashes every byte.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::checksum::sha256_file;
use crate::error::{Error, Result};

/// How long before the check began a file's last change must be for it to be stamped.
const SETTLED: Duration = Duration::from_secs(2);

/// What a stamp holds of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    sha256: String,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata, sha256: &str) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            sha256: sha256.to_string(),
        }
    }
}

/// How one file was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checked {
    /// Its stamp says it holds the checksummed bytes.
    Stamped,
    /// Hashed: its bytes have the checksum.
    Hashed,
    /// Hashed: its bytes do not have the checksum.
    Differs,
}

/// The stamps of one store, as read at the start of a check.
#[derive(Debug)]
pub(super) struct Stamps {
    root: PathBuf,
    /// `None`: every file is hashed (fsck).
    old: Option<BTreeMap<String, Stamp>>,
    began_ns: i64,
    settled: Duration,
}

/// What [`Stamps::check`] learnt of one file: how it was checked, and its stamp to keep.
pub(super) type Outcome = (Checked, Option<(String, Stamp)>);

impl Stamps {
    /// The stamps of the store at `root` (none if there are none or they cannot be read).
    pub(super) fn load(root: &Path) -> Self {
        let old = std::fs::read(Self::file(root))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Stamps {
            root: root.to_path_buf(),
            old: Some(old),
            began_ns: now_ns(),
            settled: SETTLED,
        }
    }

    /// No stamps: every file is hashed, and nothing is written.
    pub(super) fn none(root: &Path) -> Self {
        Stamps {
            root: root.to_path_buf(),
            old: None,
            began_ns: now_ns(),
            settled: SETTLED,
        }
    }

    fn file(root: &Path) -> PathBuf {
        root.join("index/verified.json")
    }

    /// Whether `path` holds bytes with checksum `sha256`, from its stamp or by hashing it.
    pub(super) fn check(&self, path: &Path, sha256: &str) -> Result<Outcome> {
        let Some(old) = &self.old else {
            let same = sha256_file(path)? == sha256;
            return Ok((
                if same {
                    Checked::Hashed
                } else {
                    Checked::Differs
                },
                None,
            ));
        };
        let key = path
            .strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let before = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let stamp = Stamp::of(&before, sha256);
        if old.get(&key) == Some(&stamp) {
            return Ok((Checked::Stamped, Some((key, stamp))));
        }
        if sha256_file(path)? != sha256 {
            return Ok((Checked::Differs, None));
        }
        let after = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let settled = stamp.ctime_ns < self.began_ns - self.settled.as_nanos() as i64;
        let keep = (Stamp::of(&after, sha256) == stamp && settled).then_some((key, stamp));
        Ok((Checked::Hashed, keep))
    }

    /// Keeps exactly `kept` (the stamps of this check's files) when they differ from those
    /// read; a failure to write is not an error (the next check hashes again).
    pub(super) fn save(self, kept: BTreeMap<String, Stamp>) {
        let Some(old) = self.old else { return };
        if kept == old {
            return;
        }
        let mut bytes = serde_json::to_vec_pretty(&kept).expect("stamps serialize");
        bytes.push(b'\n');
        let _ = crate::fs::write_atomic(&Self::file(&self.root), &bytes);
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(path: &Path) -> String {
        sha256_file(path).unwrap()
    }

    /// Checks `file` against `sum` with the stamps on disk (a change `settled` before the check
    /// began counting as settled), and keeps what it learnt.
    fn check_once(root: &Path, file: &Path, sum: &str, settled: Duration) -> Checked {
        let mut stamps = Stamps::load(root);
        stamps.settled = settled;
        let (checked, stamp) = stamps.check(file, sum).unwrap();
        stamps.save(stamp.into_iter().collect());
        checked
    }

    #[test]
    fn a_stamp_spares_the_hash_until_the_file_changes_even_at_the_same_size() {
        let root = std::env::temp_dir().join(format!("tapedeck-stamps-{}", std::process::id()));
        std::fs::create_dir_all(root.join("index")).unwrap();
        let file = root.join("part.jsonl");
        std::fs::write(&file, b"{\"a\":1}\n").unwrap();
        let sum = sha(&file);
        // Changed just now: hashed, and with the default settling time not stamped.
        assert_eq!(check_once(&root, &file, &sum, SETTLED), Checked::Hashed);
        assert!(
            !Stamps::file(&root).exists(),
            "a file changed just now is not stamped"
        );
        // Settled: hashed once, then stamped.
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Hashed
        );
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Stamped
        );
        // Another checksum than the stamp's is hashed again.
        assert_eq!(
            check_once(&root, &file, "00", Duration::ZERO),
            Checked::Differs
        );
        // A same-size edit, then the original bytes back: both hashed (ctime moved).
        std::fs::write(&file, b"{\"a\":7}\n").unwrap();
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Differs
        );
        std::fs::write(&file, b"{\"a\":1}\n").unwrap();
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Hashed
        );
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Stamped
        );
        // Without stamps (fsck) every check hashes, and writes nothing.
        let none = Stamps::none(&root);
        assert_eq!(none.check(&file, &sum).unwrap(), (Checked::Hashed, None));
        // A garbage stamps file is no stamps.
        std::fs::write(Stamps::file(&root), b"\x00garbage").unwrap();
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Hashed
        );
        assert_eq!(
            check_once(&root, &file, &sum, Duration::ZERO),
            Checked::Stamped
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
