//! Content checksums of store files (sha256, hex): what the index manifest records of the
//! log parts it was built from and of its own files.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// sha256 (hex) of a file's bytes.
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex(&h.finalize()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
