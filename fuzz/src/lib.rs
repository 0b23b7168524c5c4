//! What the fuzz targets (`fuzz_targets/*.rs`) share: lines split as the readers split them, a
//! scratch directory per process for targets that read files, and the seed inputs each target
//! writes into its corpus when asked (`TAPEDECK_FUZZ_WRITE_SEEDS=DIR`, see `fuzz/README.md`).
//!
//! Invariant: nothing here decides what a target checks; each target states its own oracle at
//! its top, so a crash report names the broken rule.

use std::path::{Path, PathBuf};

pub mod seeds;

/// The lines of `data` as `BufRead::lines` gives them (`\n` or `\r\n` ended, the last one
/// possibly unterminated). A line that is not UTF-8 is skipped: the readers fail on it as an
/// I/O error before any parser runs, so it tells the parsers nothing.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &str> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l.strip_suffix(b"\r").unwrap_or(l)).ok())
}

/// A directory of this process for targets that need files: under `TAPEDECK_FUZZ_SCRATCH`
/// when set (`scripts/fuzz.sh` sets it and removes it after the run), else in `/dev/shm` (or
/// the temp dir), named after the target and the process id.
pub fn scratch_dir(target: &str) -> PathBuf {
    let base = std::env::var_os("TAPEDECK_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
    let dir = base.join(format!("tapedeck-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
    dir
}

/// Writes `target`'s seeds into `$TAPEDECK_FUZZ_WRITE_SEEDS/<target>/` when that variable is
/// set (the targets call this from their `init`); does nothing otherwise.
pub fn write_seeds_if_asked(target: &str) {
    let Some(dir) = std::env::var_os("TAPEDECK_FUZZ_WRITE_SEEDS") else {
        return;
    };
    let dir = PathBuf::from(dir).join(target);
    std::fs::create_dir_all(&dir).expect("creating the seed directory");
    for (name, bytes) in seeds::for_target(target) {
        std::fs::write(dir.join(name), bytes).expect("writing a seed");
    }
}
