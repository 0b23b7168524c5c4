//! Python and JavaScript guests: folders with a `pyproject.toml` or a `package.json`, built
//! to Wasm components by componentize-py and componentize-js against the same WIT, with every
//! WASI interface left out, so the component imports nothing.
//!
//! The toolchains are installed by `scripts/setup.sh --guest-langs` outside the repository:
//! a venv at `~/.cache/tapedeck-py` (componentize-py, which bundles CPython) and an npm prefix
//! at `~/.cache/tapedeck-js` (componentize-js, which bundles SpiderMonkey). Found there, or
//! at `$TAPEDECK_COMPONENTIZE_PY` / `$TAPEDECK_COMPONENTIZE_JS`.
//!
//! - Python: `[project] name, version` and `[tool.tapedeck] world, module` of pyproject.toml;
//!   the module defines `WitWorld = tapedeck.export_strategy(Type)` (the SDK is on the path
//!   and a generated `tapedeck_build` module carries the name and version).
//! - JavaScript: `name`, `version`, `main` and `tapedeck.world` of package.json; `main`
//!   default-exports the guest class and imports the SDK as `"tapedeck"`. The main file's
//!   folder is copied to a staging folder beside the SDK (as the file `tapedeck`) and a
//!   generated entry module that exports the world's functions.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// Pinned toolchain versions (what `scripts/setup.sh --guest-langs` installs).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// The language of a guest folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
}

impl Lang {
    /// By the manifest the folder holds: Cargo.toml, pyproject.toml or package.json.
    pub fn of(dir: &Path) -> Result<Lang> {
        for (file, lang) in [
            ("Cargo.toml", Lang::Rust),
            ("pyproject.toml", Lang::Python),
            ("package.json", Lang::JavaScript),
        ] {
            if dir.join(file).is_file() {
                return Ok(lang);
            }
        }
        Err(Error::Manifest {
            path: dir.to_path_buf(),
            message: "no Cargo.toml (Rust), pyproject.toml (Python) or package.json \
                      (JavaScript) here: not a guest folder"
                .into(),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "js",
        }
    }
}

/// What a script guest's manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// `strategy` or `projector`.
    pub world: String,
    /// Python: the module to componentize; JavaScript: the main file, relative to the folder.
    pub entry: String,
    /// The guest SDK folder (`guest-sdk`, holding `wit/`, `python/`, `js/`), if the manifest
    /// names one (relative to the guest folder).
    pub sdk: Option<PathBuf>,
}

fn home_cache(sub: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join(sub))
}

/// The componentize-py executable.
pub fn componentize_py() -> Result<PathBuf> {
    find_tool(
        "TAPEDECK_COMPONENTIZE_PY",
        home_cache("tapedeck-py").map(|d| d.join("bin/componentize-py")),
        "componentize-py",
        COMPONENTIZE_PY_VERSION,
    )
}

/// The componentize-js executable.
pub fn componentize_js() -> Result<PathBuf> {
    find_tool(
        "TAPEDECK_COMPONENTIZE_JS",
        home_cache("tapedeck-js").map(|d| d.join("node_modules/.bin/componentize-js")),
        "componentize-js",
        COMPONENTIZE_JS_VERSION,
    )
}

fn find_tool(var: &str, default: Option<PathBuf>, name: &str, version: &str) -> Result<PathBuf> {
    let given = std::env::var_os(var).map(PathBuf::from);
    let candidate = given.clone().or(default);
    match candidate {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(Error::Manifest {
            path: candidate.unwrap_or_else(|| PathBuf::from(name)),
            message: format!(
                "{name} {version} is not installed there; run `scripts/setup.sh --guest-langs` \
                 (it installs it under ~/.cache), or set {var} to its executable"
            ),
        }),
    }
}

/// Runs `cmd`; its stdout, or an error with the tail of its stderr.
fn run(cmd: &mut Command, what: &str, dir: &Path) -> Result<String> {
    let out = cmd.output().map_err(|source| Error::Io {
        what: format!("running {what}"),
        source,
    })?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        return Err(Error::Cargo {
            krate: dir.to_path_buf(),
            status: format!("{what}: {}", out.status),
            stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads a guest folder's manifest (with the toolchain's own interpreter: Python's tomllib,
/// node's JSON).
pub fn manifest(dir: &Path, lang: Lang) -> Result<Manifest> {
    let lines = match lang {
        Lang::Python => {
            let python = componentize_py()?.with_file_name("python3");
            const READ: &str = "import sys, tomllib\n\
                p = tomllib.load(open(sys.argv[1], 'rb'))\n\
                proj, td = p.get('project', {}), p.get('tool', {}).get('tapedeck', {})\n\
                name = proj.get('name', '')\n\
                print(name); print(proj.get('version', '0.0.0'))\n\
                print(td.get('world', 'strategy'))\n\
                print(td.get('module', name.replace('-', '_')))\n\
                print(td.get('sdk', ''))";
            run(
                Command::new(python)
                    .arg("-c")
                    .arg(READ)
                    .arg(dir.join("pyproject.toml")),
                "reading pyproject.toml",
                dir,
            )?
        }
        Lang::JavaScript => {
            const READ: &str = "const p = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));\n\
                const t = p.tapedeck || {};\n\
                console.log([p.name || '', p.version || '0.0.0', t.world || 'strategy', \
                p.main || 'src/strategy.js', t.sdk || ''].join('\\n'));";
            run(
                Command::new("node")
                    .arg("-e")
                    .arg(READ)
                    .arg(dir.join("package.json")),
                "reading package.json",
                dir,
            )?
        }
        Lang::Rust => unreachable!("Rust crates are built by `build`"),
    };
    let mut it = lines.lines().map(str::trim);
    let mut next = || it.next().unwrap_or("").to_string();
    let (name, version, world, entry, sdk) = (next(), next(), next(), next(), next());
    let path = dir.join(match lang {
        Lang::Python => "pyproject.toml",
        _ => "package.json",
    });
    if name.is_empty() {
        return Err(Error::Manifest {
            path,
            message: "no name".into(),
        });
    }
    if world != "strategy" && world != "projector" {
        return Err(Error::Manifest {
            path,
            message: format!("world `{world}`: a guest is a `strategy` or a `projector`"),
        });
    }
    Ok(Manifest {
        name,
        version,
        world,
        entry,
        sdk: (!sdk.is_empty()).then(|| dir.join(sdk)),
    })
}

/// The `guest-sdk` folder of the source tree this crate was built from.
pub fn built_from_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk")
}

/// Builds a Python or JavaScript guest folder to the component `out`, staging in `stage`
/// (emptied first). `sdk` is the `guest-sdk` folder (default: the manifest's, else this
/// source tree's).
pub fn build(dir: &Path, lang: Lang, stage: &Path, out: &Path) -> Result<Manifest> {
    let io = |what: String| move |source| Error::Io { what, source };
    // Absolute: the tools run in the staging folder.
    let dir = &std::path::absolute(dir).map_err(io(format!("resolving {}", dir.display())))?;
    let out = &std::path::absolute(out).map_err(io(format!("resolving {}", out.display())))?;
    let m = manifest(dir, lang)?;
    let sdk = m.sdk.clone().unwrap_or_else(built_from_sdk);
    let sdk = std::path::absolute(&sdk).map_err(io(format!("resolving {}", sdk.display())))?;
    let wit = sdk.join("wit");
    let _ = std::fs::remove_dir_all(stage);
    std::fs::create_dir_all(stage).map_err(io(format!("creating {}", stage.display())))?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    match lang {
        Lang::Python => {
            std::fs::write(
                stage.join("tapedeck_build.py"),
                format!(
                    "# Written by tapedeck build.\nNAME = {:?}\nVERSION = {:?}\n",
                    m.name, m.version
                ),
            )
            .map_err(io(format!("writing into {}", stage.display())))?;
            let mut cmd = Command::new(componentize_py()?);
            cmd.arg("-d")
                .arg(&wit)
                .args(["-w", &m.world, "componentize", "--stub-wasi", &m.entry])
                .arg("-p")
                .arg(dir)
                .arg("-p")
                .arg(sdk.join("python"))
                .arg("-p")
                .arg(stage)
                .arg("-o")
                .arg(out)
                .current_dir(stage)
                // No __pycache__ in the guest's or the SDK's folder.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                // A Python error is the message; the tool's Rust backtrace is noise.
                .env("RUST_BACKTRACE", "0");
            run(&mut cmd, "componentize-py", dir)?;
        }
        Lang::JavaScript => {
            let main = dir.join(&m.entry);
            let src = main.parent().unwrap_or(dir);
            copy_js_tree(src, stage)?;
            std::fs::copy(sdk.join("js/tapedeck.js"), stage.join("tapedeck")).map_err(io(
                format!("copying the JavaScript SDK from {}", sdk.display()),
            ))?;
            let file = main
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut entry = format!(
                "// Written by tapedeck build: the world's exports for the guest class.\n\
                 import Guest from \"./{file}\";\n\
                 import {{ exportGuest }} from \"./tapedeck\";\n\
                 const w = exportGuest(Guest, {{ name: {:?}, version: {:?}, world: {:?} }});\n",
                m.name, m.version, m.world
            );
            let mut exports = vec![
                "init",
                "metadata",
                "setInstruments",
                "onEvents",
                "snapshot",
                "restore",
            ];
            if m.world == "projector" {
                exports.push("state");
            }
            for e in exports {
                entry.push_str(&format!("export const {e} = w.{e};\n"));
            }
            std::fs::write(stage.join("tapedeck-entry.js"), entry)
                .map_err(io(format!("writing into {}", stage.display())))?;
            let mut cmd = Command::new(componentize_js()?);
            cmd.arg("tapedeck-entry.js")
                .arg("--wit")
                .arg(&wit)
                .args(["-n", &m.world])
                // Every WASI feature off: the component imports nothing.
                .args(["-d", "stdio", "random", "clocks", "http", "fetch-event"])
                .arg("-o")
                .arg(out)
                .current_dir(stage);
            run(&mut cmd, "componentize-js", dir)?;
        }
        Lang::Rust => unreachable!("Rust crates are built by `build`"),
    }
    Ok(m)
}

/// Copies the `.js`/`.mjs`/`.json` files under `src` into `dst` (node_modules skipped).
fn copy_js_tree(src: &Path, dst: &Path) -> Result<()> {
    let io = |what: String| move |source| Error::Io { what, source };
    let entries = std::fs::read_dir(src).map_err(io(format!("reading {}", src.display())))?;
    for e in entries {
        let e = e.map_err(io(format!("reading {}", src.display())))?;
        let (path, name) = (e.path(), e.file_name());
        if path.is_dir() {
            if name != "node_modules" && name != ".git" {
                let sub = dst.join(&name);
                std::fs::create_dir_all(&sub).map_err(io(format!("creating {}", sub.display())))?;
                copy_js_tree(&path, &sub)?;
            }
        } else if matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("js" | "mjs" | "json")
        ) {
            std::fs::copy(&path, dst.join(&name))
                .map_err(io(format!("copying {}", path.display())))?;
        }
    }
    Ok(())
}

/// A digest of the files a script guest's component is built from (its folder, the SDK, the
/// WIT, the toolchain's path), to skip a rebuild when nothing changed. Not cryptographic: a
/// cache key for one machine.
pub fn inputs_digest(dir: &Path, lang: Lang) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let sdk = built_from_sdk();
    let mut files = Vec::new();
    collect(dir, &mut files);
    collect(&sdk.join("wit"), &mut files);
    collect(
        &sdk.join(match lang {
            Lang::Python => "python",
            _ => "js",
        }),
        &mut files,
    );
    files.sort();
    // DefaultHasher::new() has fixed keys: stable across runs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let tool = match lang {
        Lang::Python => componentize_py()?,
        _ => componentize_js()?,
    };
    tool.hash(&mut h);
    for f in files {
        f.hash(&mut h);
        std::fs::read(&f)
            .map_err(|source| Error::Io {
                what: format!("reading {}", f.display()),
                source,
            })?
            .hash(&mut h);
    }
    Ok(h.finish())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "node_modules" && name != "__pycache__" && name != ".git" {
                collect(&p, out);
            }
        } else {
            out.push(p);
        }
    }
}
