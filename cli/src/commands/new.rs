//! `tapedeck new`: a new guest crate that `tapedeck build` builds as written.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tapedeck_guest_build::scaffold::{self, Kind, NewCrate, Sdk};
use tapedeck_guest_build::script::Lang;

/// Start a guest crate: a strategy or a projector, with native unit tests through the SDK's
/// driver, an example config and a README. It is a workspace of its own, so it builds
/// wherever it is put: `tapedeck build DIR` right away, `cargo test` in it for the tests.
/// With `--lang python` or `--lang js`, a Python folder (pyproject.toml, unittest tests under
/// CPython) or a JavaScript one (package.json, node tests), built by `tapedeck build` too.
#[derive(clap::Args, Debug)]
pub struct New {
    /// What the module is.
    #[arg(value_enum)]
    pub kind: KindArg,
    /// The crate (package) name: lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// Directory to create [default: ./NAME]; it must not exist or be empty.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Where the crate gets the guest SDK: a `guest-sdk` directory, or the git URL of a
    /// Tapedeck repository [default: the `guest-sdk` of the source tree this binary was built
    /// from].
    #[arg(long, value_name = "PATH|GIT_URL")]
    pub sdk: Option<String>,
    /// The guest's language (Python and JavaScript need a `guest-sdk` directory as the SDK).
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: LangArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LangArg {
    Rust,
    Python,
    Js,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    Strategy,
    Projector,
}

impl New {
    pub fn run(self) -> Result<ExitCode> {
        if let Err(why) = scaffold::check_name(&self.name) {
            bail!("{why}");
        }
        let sdk = match self.sdk.as_deref() {
            Some(s) => Sdk::parse(s),
            None => match Sdk::built_from() {
                Some(sdk) => sdk,
                None => bail!(
                    "the guest SDK this tapedeck was built from is gone; pass --sdk PATH (a \
                     clone's guest-sdk directory) or --sdk GIT_URL (the Tapedeck repository)"
                ),
            },
        };
        // A path as the new crate's Cargo.toml needs it: absolute (it is not where we are).
        let sdk = match sdk {
            Sdk::Path(p) if p.join("Cargo.toml").is_file() => Sdk::Path(
                p.canonicalize()
                    .with_context(|| format!("resolving --sdk {}", p.display()))?,
            ),
            Sdk::Path(p) => {
                bail!(
                    "--sdk {}: no Cargo.toml there; give a `guest-sdk` directory",
                    p.display()
                )
            }
            git => git,
        };
        let kind = match self.kind {
            KindArg::Strategy => Kind::Strategy,
            KindArg::Projector => Kind::Projector,
        };
        let lang = match self.lang {
            LangArg::Rust => Lang::Rust,
            LangArg::Python => Lang::Python,
            LangArg::Js => Lang::JavaScript,
        };
        let written_sdk = match &sdk {
            Sdk::Path(p) => Some(p.clone()),
            Sdk::Git(_) => None,
        };
        let dir = self.path.unwrap_or_else(|| PathBuf::from(&self.name));
        let written = scaffold::create(&NewCrate {
            kind,
            name: self.name.clone(),
            dir: dir.clone(),
            sdk,
            lang,
        })?;
        for f in &written {
            eprintln!("  wrote {}", f.display());
        }
        outln!("{}", dir.display());
        let tests = match lang {
            Lang::Rust => "cargo test".to_string(),
            Lang::Python => format!(
                "PYTHONPATH={}/python python3 -m unittest",
                match &written_sdk {
                    Some(p) => p.display().to_string(),
                    None => "GUEST_SDK".into(),
                }
            ),
            Lang::JavaScript => "npm install && npm test".into(),
        };
        eprintln!(
            "next: tapedeck build {d}    (the module: target/guests/{n}.wasm)\n      \
             cd {d} && {tests}     (its unit tests, natively)",
            d = dir.display(),
            n = self.name
        );
        Ok(ExitCode::SUCCESS)
    }
}
