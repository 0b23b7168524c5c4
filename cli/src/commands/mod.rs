//! The `tapedeck` subcommands, one file each. Every command returns its exit code:
//! 0 clean, 1 findings, 2 error (errors are printed by `main`).

pub mod backtest;
pub mod bench;
pub mod bench_backtest;
pub mod bench_live;
pub mod bench_sweep;
pub mod build;
pub mod copy;
pub mod events;
pub mod feed;
pub mod fixtures;
pub mod fsck;
pub mod import;
pub mod index;
pub mod inspect;
pub mod live;
pub mod merge;
pub mod new;
pub mod postgres;
pub mod progress;
pub mod reconcile;
pub mod record;
pub mod regress;
pub mod replay;
pub mod rerun;
pub mod retention;
pub mod snapshot;
pub mod streams;
pub mod sweep;
pub mod warmup;

use std::path::PathBuf;

/// Where guest crates are compiled: `$CARGO_TARGET_DIR/tapedeck-guests`, else
/// `target/tapedeck-guests` under the current directory.
pub fn default_guest_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("tapedeck-guests"),
        None => PathBuf::from("target/tapedeck-guests"),
    }
}

/// The repository's own guest crates, when this binary runs from its source tree.
pub fn repo_guest_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../strategies")
        .join(name)
}

/// `--lock-timeout`, for every command that writes into a file store.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct LockTimeout {
    /// Seconds to wait while another process writes the same file store, before giving up
    /// (exit 2, naming that process); 0 tries once.
    #[arg(long = "lock-timeout", value_name = "SECS", default_value_t = 30.0)]
    pub lock_timeout: f64,
}

impl LockTimeout {
    /// File store options with this timeout.
    pub fn options(self) -> anyhow::Result<tapedeck::store::FileStoreOptions> {
        let t = self.lock_timeout;
        if !(t.is_finite() && (0.0..=1e9).contains(&t)) {
            anyhow::bail!("--lock-timeout wants seconds (0 or more), got {t}");
        }
        Ok(tapedeck::store::FileStoreOptions {
            lock_timeout: std::time::Duration::from_secs_f64(t),
            ..Default::default()
        })
    }
}

/// Builds this source tree's guest crates `names` (into the default guest target dir); their
/// component paths.
pub fn repo_guests<const N: usize>(
    rt: &tapedeck::runtime::Runtime,
    names: [&str; N],
) -> anyhow::Result<[PathBuf; N]> {
    let tc = tapedeck_guest_build::detect()?;
    let target = default_guest_target_dir();
    let out = target.join("components");
    std::fs::create_dir_all(&out)?;
    let mut paths = Vec::with_capacity(N);
    for name in names {
        paths.push(build::build_one(
            &tc,
            rt,
            &repo_guest_dir(name),
            &target,
            &out,
        )?);
    }
    Ok(paths.try_into().expect("one path per name"))
}
