//! `tapedeck build`: guest crates and folders (Rust, Python, JavaScript) to Wasm components.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use tapedeck::runtime::{Module, Runtime, RuntimeConfig, componentize};
use tapedeck_guest_build::script::{self, Lang};

/// Build guests (strategies, projectors) to Wasm components: Rust crates, Python folders
/// (pyproject.toml) and JavaScript folders (package.json).
///
/// Rust: the rustup `wasm32-unknown-unknown` target when it is installed, otherwise a Rust
/// toolchain with its std source (Debian: rustc-web, cargo-web, rust-web-src, lld-22) and
/// `-Zbuild-std`. Python: componentize-py with WASI stubbed out; JavaScript: componentize-js
/// with every WASI feature off (both installed by `scripts/setup.sh --guest-langs`): the
/// components import nothing. Each component is loaded once to check its world and ABI
/// version.
#[derive(clap::Args, Debug)]
pub struct Build {
    /// Guest directories: a Rust `cdylib` crate (Cargo.toml), a Python guest
    /// (pyproject.toml) or a JavaScript guest (package.json).
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
        let langs = self
            .crates
            .iter()
            .map(|d| Lang::of(d))
            .collect::<Result<Vec<_>, _>>()?;
        let tc = if langs.contains(&Lang::Rust) {
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
            Some(tc)
        } else {
            None
        };
        let target_dir = self
            .target_dir
            .unwrap_or_else(super::default_guest_target_dir);
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        })?;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        for (dir, lang) in self.crates.iter().zip(langs) {
            let out = match (lang, &tc) {
                (Lang::Rust, Some(tc)) => build_one(tc, &rt, dir, &target_dir, &self.out)?,
                _ => build_script(&rt, dir, lang, &target_dir, &self.out)?,
            };
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
    describe(&name, &module, component.len());
    Ok(out)
}

/// Builds a Python or JavaScript guest folder to `<out_dir>/<name>.wasm` and checks it loads.
pub fn build_script(
    rt: &Runtime,
    dir: &Path,
    lang: Lang,
    target_dir: &Path,
    out_dir: &Path,
) -> Result<PathBuf> {
    let m = script::manifest(dir, lang)?;
    eprintln!(
        "building {} ({}) with componentize-{}",
        m.name,
        dir.display(),
        match lang {
            Lang::Python => "py",
            _ => "js",
        }
    );
    let out = out_dir.join(format!("{}.wasm", m.name));
    let stage = target_dir.join(format!("stage-{}-{}", lang.as_str(), m.name));
    script::build(dir, lang, &stage, &out)?;
    let _ = std::fs::remove_dir_all(&stage);
    let module = rt.load(&out)?;
    let len = std::fs::metadata(&out)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    describe(&m.name, &module, len);
    Ok(out)
}

fn describe(name: &str, module: &Module, len: usize) {
    let info = module.info();
    eprintln!(
        "  {name}: {} {} v{} (ABI v{}), {} bytes, sha256 {}",
        module.kind().as_str(),
        info.name,
        info.version,
        info.abi_version,
        len,
        module.hash().hex()
    );
}
