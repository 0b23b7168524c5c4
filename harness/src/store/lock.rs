//! The file store's writer lock: one writing process per store directory at a time.
//!
//! `DIR/writer.lock` carries an OS file lock (`flock` on Unix, `LockFileEx` on Windows, through
//! std's `File::try_lock`), held from the moment a store starts writing until the store is
//! dropped; the OS releases it when the holder exits, however it exits, so a crash never leaves
//! the store locked. While held, the file says who holds it (one JSON line: pid, command line,
//! since when), so a writer that gives up can name the holder.
//!
//! Invariants:
//! - Across processes a lock excludes: a second writer polls until its timeout, then fails with
//!   [`Error::StoreLocked`] naming the holder. Readers take no lock.
//! - Within one process, writers of one directory share the process's lock (an OS lock is per
//!   open file, and a process waiting on itself would only time out). They stay consistent
//!   through [`WriterLock::generation`]: every write bumps it, and a store whose cached view of
//!   the log is older than the generation rereads the log before it appends.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The lock file, under the store's root.
pub const LOCK_FILE: &str = "writer.lock";

/// A held writer lock; cloned by every writer of the directory in this process.
#[derive(Debug, Clone)]
pub(super) struct WriterLock(Arc<Held>);

#[derive(Debug)]
struct Held {
    file: File,
    /// Writes through this lock so far (see the module doc).
    generation: AtomicU64,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Nobody holds it now: say so before letting go (the OS lets go on close anyway).
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The locks this process holds, by canonical store directory.
static HELD: Mutex<BTreeMap<PathBuf, Weak<Held>>> = Mutex::new(BTreeMap::new());

impl WriterLock {
    /// Takes the writer lock of the store at `root`, waiting up to `timeout` for another
    /// process to release it.
    pub(super) fn acquire(root: &Path, timeout: Duration) -> Result<WriterLock> {
        let key = root.canonicalize().map_err(|e| Error::io(root, e))?;
        // Held across the wait, so two threads of this process never race for the OS lock.
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, w| w.strong_count() > 0);
        if let Some(h) = held.get(&key).and_then(Weak::upgrade) {
            return Ok(WriterLock(h));
        }
        let path = key.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::StoreLocked {
                        store: root.to_path_buf(),
                        holder: holder_of(&mut file),
                        waited_secs: start.elapsed().as_secs_f64(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        let note = serde_json::json!({
            "pid": std::process::id(),
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "since": crate::time::format_ns(wall_clock_ns()),
        });
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{note}")?;
            f.sync_data()
        };
        write(&mut file).map_err(|e| Error::io(&path, e))?;
        let h = Arc::new(Held {
            file,
            generation: AtomicU64::new(0),
        });
        held.insert(key, Arc::downgrade(&h));
        Ok(WriterLock(h))
    }

    /// Writes made through this process's lock of the store so far.
    pub(super) fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    /// Records a write (call after it), returning the new generation.
    pub(super) fn wrote(&self) -> u64 {
        self.0.generation.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Who holds the lock, from the lock file's note: `pid N (`command`) since T`.
fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    let v: serde_json::Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(_) => return "a process that has not written its note yet".into(),
    };
    format!(
        "pid {} (`{}`) since {}",
        v["pid"],
        v["command"].as_str().unwrap_or("?"),
        v["since"].as_str().unwrap_or("?")
    )
}

/// Now, for the lock note only (never in a report).
fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_of_one_process_share_the_lock_and_it_is_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("tapedeck-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = WriterLock::acquire(&dir, Duration::ZERO).unwrap();
        let b = WriterLock::acquire(&dir, Duration::ZERO).unwrap();
        assert_eq!(b.wrote(), 1);
        assert_eq!(a.generation(), 1, "one lock, one generation");
        let path = dir.join(LOCK_FILE);
        let note = std::fs::read_to_string(&path).unwrap();
        assert!(
            note.contains(&format!("\"pid\":{}", std::process::id())),
            "{note}"
        );
        // Another open file of the lock (what another process has) cannot take it.
        let other = File::open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop((a, b));
        other.try_lock().unwrap();
        other.unlock().unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
