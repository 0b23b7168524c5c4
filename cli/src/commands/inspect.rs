//! `tapedeck inspect`: what a module is.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use tapedeck::runtime::{Runtime, RuntimeConfig};

/// Load a module and print its world, name, version, ABI version, sha256, and what it declares
/// (core instances, memories, tables; whether it is allocated from the pool or on demand).
#[derive(clap::Args, Debug)]
pub struct Inspect {
    /// A component, or a core module built with tapedeck-guest.
    pub module: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Inspect {
    pub fn run(self) -> Result<ExitCode> {
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        })?;
        let m = rt.load(&self.module)?;
        let v = serde_json::json!({
            "path": m.origin(),
            "kind": m.kind(),
            "name": m.info().name,
            "version": m.info().version,
            "abi_version": m.info().abi_version,
            "sha256": m.hash().hex(),
            "footprint": m.footprint(),
            "allocation": if m.on_demand() { "on-demand" } else { "pool" },
        });
        if self.json {
            outln!("{v}");
        } else {
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Ok(ExitCode::SUCCESS)
    }
}
