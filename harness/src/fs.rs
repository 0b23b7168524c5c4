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
