//! The compile cache: compiled components on disk, one file per (module content hash, engine
//! compatibility tag), each sealed with a keyed MAC that is checked before the bytes are used.
//!
//! Threat model. Deserializing a compiled artifact maps its bytes as native code: wasmtime checks
//! the header, not the machine code, so a damaged entry crashes (SIGSEGV/SIGTRAP) and a crafted
//! one runs whatever it contains as the user. Every entry is therefore written as
//! `MAGIC || HMAC-SHA256(key, artifact) || artifact`, under a key of 32 random bytes kept in
//! `DIR/key` (created 0600, never rewritten). An entry whose MAC does not verify is reported,
//! deleted and recompiled; it is never deserialized. This stops damage (disk, truncation, a
//! half-copied cache) and anyone who can write the cache directory but cannot read the key (a
//! shared or group-writable cache). It does not stop someone who can read the key: that is the
//! user, who can run native code anyway. A key readable by others is refused (the cache is then
//! not used, and the run says so).
//!
//! The artifact is verified and deserialized from the same bytes in memory, so the file cannot
//! change between the check and the use.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry: format and version.
const MAGIC: &[u8; 8] = b"TDCWASM1";
const MAC_LEN: usize = 32;

/// How a module's compiled code was obtained; `Module::cache` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from a verified cache entry.
    Hit,
    /// Compiled (no entry, or no cache).
    Compiled,
    /// An entry was there but failed its check (or wasmtime refused it): recompiled and replaced.
    Replaced { reason: String },
}

/// A cache directory and its key.
pub(crate) struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl CompileCache {
    /// Opens (creating if needed) the cache in `dir`; `Err` says why the cache cannot be used.
    pub(crate) fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key = load_or_create_key(&dir.join("key"))?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The entry `name`, verified and deserialized. `Ok(None)`: no entry. `Err(reason)`: an entry
    /// that must not be used (already deleted here).
    pub(crate) fn get(&self, engine: &Engine, name: &str) -> Result<Option<Component>, String> {
        let path = self.path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        let checked = self.open_sealed(&bytes).and_then(|artifact| {
            // SAFETY: these bytes carry a MAC under this cache's key, so this runtime wrote them
            // (see the module doc); wasmtime also checks the header against the engine.
            unsafe { Component::deserialize(engine, artifact) }
                .map_err(|e| format!("wasmtime refused it: {e}"))
        });
        match checked {
            Ok(c) => Ok(Some(c)),
            Err(reason) => {
                let _ = std::fs::remove_file(&path);
                Err(reason)
            }
        }
    }

    /// Writes the entry `name` (atomically: readers see the old entry or the whole new one).
    pub(crate) fn put(&self, name: &str, artifact: &[u8]) -> crate::error::Result<()> {
        let mut sealed = Vec::with_capacity(MAGIC.len() + MAC_LEN + artifact.len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&hmac_sha256(&self.key, artifact));
        sealed.extend_from_slice(artifact);
        crate::fs::write_atomic(&self.path(name), &sealed)
    }

    /// The artifact inside a sealed entry, if its MAC verifies.
    fn open_sealed<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], String> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("it has no MAC (damaged, or written by an older tapedeck)")?;
        if rest.len() < MAC_LEN {
            return Err("it is truncated".into());
        }
        let (mac, artifact) = rest.split_at(MAC_LEN);
        let want = hmac_sha256(&self.key, artifact);
        // Constant time: the comparison does not stop at the first differing byte.
        if mac.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return Err("its MAC does not match (damaged or tampered with)".into());
        }
        Ok(artifact)
    }
}

/// The cache key: read, or created once (written to a temporary file, then linked into place,
/// so racing processes agree on one key and none reads half of one).
fn load_or_create_key(path: &Path) -> Result<[u8; 32], String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let show = |e: std::io::Error| format!("{}: {e}", path.display());
    if !path.exists() {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map_err(|e| format!("cannot read /dev/urandom for a cache key: {e}"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &key));
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(show(e)),
        }
    }
    let meta = std::fs::metadata(path).map_err(show)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is readable or writable by others (mode {:o}); `chmod 600` it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let bytes = std::fs::read(path).map_err(show)?;
    bytes
        .try_into()
        .map_err(|_| format!("{} is not a 32-byte key", path.display()))
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key` (at most one block, 64 bytes).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    assert!(
        key.len() <= 64,
        "keys longer than a block are not used here"
    );
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 1: a 20-byte key of 0x0b.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn a_sealed_entry_opens_only_unchanged_and_under_its_key() {
        let dir = std::env::temp_dir().join(format!("tapedeck-cache-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CompileCache::open(&dir).unwrap();
        let again = CompileCache::open(&dir).unwrap();
        assert_eq!(cache.key, again.key, "the key is created once");
        cache.put("x.cwasm", b"artifact bytes").unwrap();
        let sealed = std::fs::read(cache.path("x.cwasm")).unwrap();
        assert_eq!(cache.open_sealed(&sealed).unwrap(), b"artifact bytes");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(cache.open_sealed(&flipped).unwrap_err().contains("MAC"));
        assert!(
            cache
                .open_sealed(b"artifact bytes")
                .unwrap_err()
                .contains("no MAC")
        );
        let other = CompileCache {
            dir: dir.clone(),
            key: [7; 32],
        };
        assert!(other.open_sealed(&sealed).is_err(), "another key");
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            CompileCache::open(&dir)
                .err()
                .unwrap()
                .contains("chmod 600")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
