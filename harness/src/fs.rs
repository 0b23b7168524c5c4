//! File-system helpers shared by the compile cache, the file store, snapshots and run
//! directories.
//!
//! Invariant: a file written with [`write_atomic`] is seen by readers either as it was or whole,
//! never half written (the temporary sibling is named `*.tmp<pid>`, which readers skip).

use std::path::Path;

use crate::error::{Error, Result};

/// Writes a file via a temporary sibling and a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A directory of a run's temporary files (equity logs, artifact parts), removed with
/// everything in it when dropped.
#[cfg(feature = "wasm")]
#[derive(Debug)]
pub struct ScratchDir {
    path: std::path::PathBuf,
}

#[cfg(feature = "wasm")]
impl ScratchDir {
    /// A new, empty directory `parent/.<name>-<pid>-<n>` (the system's temporary directory
    /// without a parent).
    pub fn new(parent: Option<&Path>, name: &str) -> Result<Self> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = base.join(format!(".{name}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(feature = "wasm")]
impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
