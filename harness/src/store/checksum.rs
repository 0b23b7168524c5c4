//! Content checksums of store files (sha256, hex): what the index manifest records of the
//! log parts it was built from and of its own files.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// sha256 (hex) of a file's bytes.
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut h = sha2::Sha256::new();
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    // Reads of 1 MiB: `io::copy`'s 8 KiB stack buffer made one syscall per 8 KiB.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(hex(&h.finalize()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
