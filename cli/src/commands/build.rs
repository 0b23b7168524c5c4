//! `tapedeck build`: guest crates to Wasm components.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use tapedeck::runtime::{Runtime, RuntimeConfig, componentize};

/// Build guest crates (strategies, projectors) to Wasm components.
///
/// Uses the rustup `wasm32-unknown-unknown` target when it is installed, otherwise a Rust
/// toolchain with its std source (Debian: rustc-web, cargo-web, rust-web-src, lld-22) and
/// `-Zbuild-std`. Each component is loaded once to check its world and ABI version.
#[derive(clap::Args, Debug)]
pub struct Build {
    /// Guest crate directories (each with a Cargo.toml of a `cdylib` crate).
    #[arg(required = true)]
    pub crates: Vec<PathBuf>,
    /// Where the components go, as `<crate-name>.wasm`.
    #[arg(long, default_value = "target/guests")]
    pub out: PathBuf,
    /// Cargo target directory for the guest builds [default: $CARGO_TARGET_DIR/tapedeck-guests
    /// or target/tapedeck-guests].
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
}

impl Build {
    pub fn run(self) -> Result<ExitCode> {
        let tc = tapedeck_guest_build::detect()?;
        eprintln!(
            "building with {} ({}{})",
            tc.rustc.display(),
            tc.version,
            if tc.build_std {
                ", std from source"
            } else {
                ""
            }
        );
        let target_dir = self
            .target_dir
            .unwrap_or_else(super::default_guest_target_dir);
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        })?;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        for dir in &self.crates {
            let out = build_one(&tc, &rt, dir, &target_dir, &self.out)?;
            outln!("{}", out.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Builds one crate to `<out_dir>/<name>.wasm` and checks it loads.
pub fn build_one(
    tc: &tapedeck_guest_build::Toolchain,
    rt: &Runtime,
    dir: &Path,
    target_dir: &Path,
    out_dir: &Path,
) -> Result<PathBuf> {
    let name = tapedeck_guest_build::package_name(dir)?;
    let core = tapedeck_guest_build::build(tc, dir, target_dir)?;
    let bytes = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let component = componentize(&bytes, &core.display().to_string())?;
    let out = out_dir.join(format!("{name}.wasm"));
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    let module = rt.load(&out)?;
    let info = module.info();
    eprintln!(
        "  {name}: {} {} v{} (ABI v{}), {} bytes, sha256 {}",
        module.kind().as_str(),
        info.name,
        info.version,
        info.abi_version,
        component.len(),
        module.hash().hex()
    );
    Ok(out)
}
