//! The recorder's small durable files beside its WAL: the seq checkpoint (`seqs.json`) and
//! the input quarantine (`quarantine/input.jsonl`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `<wal>/seqs.json`: each stream's last seq when the WAL was last trimmed.
pub const CHECKPOINT: &str = "seqs.json";

pub fn write_checkpoint(dir: &Path, last: &HashMap<String, u64>) -> Result<()> {
    let ordered: BTreeMap<&String, &u64> = last.iter().collect();
    let bytes = serde_json::to_vec(&serde_json::json!({ "streams": ordered })).expect("json");
    write_durable(&dir.join(CHECKPOINT), &bytes)
}

/// The checkpoint's seqs (empty when there is none: a WAL never trimmed).
pub fn read_checkpoint(dir: &Path) -> Result<Option<HashMap<String, u64>>> {
    let path = dir.join(CHECKPOINT);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    #[derive(serde::Deserialize)]
    struct C {
        streams: HashMap<String, u64>,
    }
    let c: C = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        line: 0,
        message: format!("not a seq checkpoint: {e}"),
    })?;
    Ok(Some(c.streams))
}

/// `<wal>/quarantine/input.jsonl`: input that never became an event, one JSON line each.
pub struct Quarantine {
    path: PathBuf,
    file: Option<File>,
    dirty: bool,
}

impl Quarantine {
    pub fn open(wal_dir: &Path) -> Result<Self> {
        Ok(Quarantine {
            path: wal_dir.join("quarantine").join("input.jsonl"),
            file: None,
            dirty: false,
        })
    }

    pub fn add(&mut self, origin: &str, error: &str, raw: &[u8], len: usize) -> Result<()> {
        if self.file.is_none() {
            let dir = self.path.parent().expect("has a parent");
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| Error::io(&self.path, e))?;
            self.file = Some(f);
        }
        let rec = serde_json::json!({
            "origin": origin,
            "error": error,
            "bytes": len,
            "record": String::from_utf8_lossy(raw),
        });
        let mut line = serde_json::to_vec(&rec).expect("json");
        line.push(b'\n');
        let f = self.file.as_mut().expect("opened");
        f.write_all(&line).map_err(|e| Error::io(&self.path, e))?;
        self.dirty = true;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        if self.dirty
            && let Some(f) = &self.file
        {
            f.sync_data().map_err(|e| Error::io(&self.path, e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Writes a file via a temporary sibling and a rename, durable when it returns: the temporary
/// file is fsynced before the rename and the directory after it, so a crash leaves the old
/// file or the new one, whole.
fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}
