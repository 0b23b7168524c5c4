//! Builds guest crates to `wasm32-unknown-unknown` core modules.
//!
//! Which toolchain can do that is detected, not assumed:
//! 1. a rustc with the `wasm32-unknown-unknown` std installed (what `rustup target add`
//!    gives), used with the cargo beside it;
//! 2. otherwise a rustc whose std *source* is present, used with `-Zbuild-std` (on Debian:
//!    `rustc-web`, `cargo-web`, `rust-web-src`, plus `lld-22` for `rust-lld`);
//! 3. otherwise an error that says what to install.
//!
//! Dependency-free on purpose: the host's `tapedeck build` and the test-guests build script
//! both use it. [`scaffold`] makes new guest crates (`tapedeck new`).

pub mod scaffold;
pub mod script;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-unknown-unknown";
/// The cargo profile guests build with. A crate (or its workspace) may define it; otherwise
/// [`build`] passes [`PROFILE_SETTINGS`] to cargo as `--config`.
pub const PROFILE: &str = "guest";

/// The guest profile's settings, for crates that do not define `[profile.guest]`: small, fast,
/// and panics abort (guests have no unwinder). The workspace root's `[profile.guest]` says the
/// same; a crate's own profile wins over these.
pub const PROFILE_SETTINGS: &[(&str, &str)] = &[
    ("inherits", "\"release\""),
    ("opt-level", "3"),
    ("panic", "\"abort\""),
    ("lto", "true"),
    ("codegen-units", "1"),
    ("debug", "false"),
    ("strip", "true"),
];

/// A toolchain that can build wasm32 guests.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub cargo: PathBuf,
    pub rustc: PathBuf,
    /// Builds std from source (`-Zbuild-std`), with `RUSTC_BOOTSTRAP=1`.
    pub build_std: bool,
    pub version: String,
}

#[derive(Debug)]
pub enum Error {
    NoToolchain {
        tried: Vec<String>,
    },
    Io {
        what: String,
        source: std::io::Error,
    },
    Cargo {
        krate: PathBuf,
        status: String,
        stderr_tail: String,
    },
    NoArtifact {
        krate: PathBuf,
        expected: PathBuf,
    },
    Manifest {
        path: PathBuf,
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoToolchain { tried } => write!(
                f,
                "no Rust toolchain here can build {TARGET} guests (tried: {}).\n\
                 Install one of:\n  \
                 rustup target add {TARGET}\n  \
                 apt-get install rustc-web cargo-web rust-web-src lld-22   (Debian 12: std built from source)",
                tried.join("; ")
            ),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Cargo {
                krate,
                status,
                stderr_tail,
            } => {
                write!(
                    f,
                    "building guest {} failed ({status}):\n{stderr_tail}",
                    krate.display()
                )
            }
            Error::NoArtifact { krate, expected } => write!(
                f,
                "cargo built {} but {} is missing; is it a `cdylib` crate?",
                krate.display(),
                expected.display()
            ),
            Error::Manifest { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `cmd` and returns its trimmed stdout, or None if it could not run or failed.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Finds a program on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn rustc_sysroot(rustc: &Path) -> Option<PathBuf> {
    output(
        clean(&mut Command::new(rustc))
            .arg("--print")
            .arg("sysroot"),
    )
    .map(PathBuf::from)
}

/// The cargo that belongs to a rustc: the one in the same directory.
fn sibling_cargo(rustc: &Path) -> Option<PathBuf> {
    let c = rustc.with_file_name("cargo");
    c.is_file().then_some(c)
}

/// Detects a toolchain as described in the crate docs. `TAPEDECK_WASM_RUSTC` / `TAPEDECK_WASM_CARGO`
/// override the candidates.
pub fn detect() -> Result<Toolchain> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(r) = std::env::var_os("TAPEDECK_WASM_RUSTC") {
        candidates.push(r.into());
    }
    // The rustc on PATH, resolved through rustup's proxy to the real one (whose directory
    // also holds the matching cargo).
    if let Some(real) = which("rustc")
        .and_then(|r| rustc_sysroot(&r))
        .map(|s| s.join("bin").join("rustc"))
        .filter(|p| p.is_file())
    {
        candidates.push(real);
    }
    candidates.push(PathBuf::from("/usr/bin/rustc"));
    candidates.dedup();

    let mut tried = Vec::new();
    // First pass: an installed wasm32 std. Second pass: std source for build-std.
    for build_std in [false, true] {
        for rustc in &candidates {
            let Some(sysroot) = rustc_sysroot(rustc) else {
                if !build_std {
                    tried.push(format!("{} does not run", rustc.display()));
                }
                continue;
            };
            let ok = if build_std {
                sysroot
                    .join("lib/rustlib/src/rust/library/std/Cargo.toml")
                    .is_file()
                    && which("rust-lld").is_some()
            } else {
                sysroot
                    .join("lib/rustlib")
                    .join(TARGET)
                    .join("lib")
                    .is_dir()
            };
            let cargo = std::env::var_os("TAPEDECK_WASM_CARGO")
                .map(PathBuf::from)
                .or_else(|| sibling_cargo(rustc))
                .or_else(|| which("cargo"));
            match (ok, cargo) {
                (true, Some(cargo)) => {
                    let version = output(clean(&mut Command::new(rustc)).arg("--version"))
                        .unwrap_or_default();
                    return Ok(Toolchain {
                        cargo,
                        rustc: rustc.clone(),
                        build_std,
                        version,
                    });
                }
                _ => tried.push(format!(
                    "{} ({}): {}",
                    rustc.display(),
                    sysroot.display(),
                    if build_std {
                        "no std source or no rust-lld"
                    } else {
                        "no wasm32 std"
                    }
                )),
            }
        }
    }
    Err(Error::NoToolchain { tried })
}

/// A command with the variables an outer cargo (a build script, `cargo run`) sets removed,
/// so they cannot leak into the guest build.
fn clean(cmd: &mut Command) -> &mut Command {
    const LEAKY: &[&str] = &[
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_BOOTSTRAP",
        "RUSTUP_TOOLCHAIN",
    ];
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if (k.starts_with("CARGO") && k != "CARGO_HOME") || LEAKY.contains(&&*k) {
            cmd.env_remove(&*k);
        }
    }
    cmd
}

/// The `[package] name` of a crate, read from its Cargo.toml.
pub fn package_name(crate_dir: &Path) -> Result<String> {
    let path = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if let Some(rest) = line.strip_prefix("name").filter(|_| in_package) {
            let value = rest.trim_start().strip_prefix('=').map(str::trim);
            if let Some(v) = value
                .and_then(|v| v.strip_prefix('"'))
                .and_then(|v| v.split('"').next())
            {
                return Ok(v.to_string());
            }
        }
    }
    Err(Error::Manifest {
        path,
        message: "no `name` in its [package] section".into(),
    })
}

/// Whether a manifest's text defines `[profile.<name>]` (a table header, or a dotted key of
/// `[profile]`).
fn manifest_defines_profile(text: &str, name: &str) -> bool {
    let header = format!("[profile.{name}]");
    let dotted = format!("{name}.");
    let mut in_profile = false;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            // `[profile.guest]`, or a sub-table such as `[profile.guest.package.x]`.
            let open = &header[..header.len() - 1];
            if compact == header
                || (compact.starts_with(open) && compact[open.len()..].starts_with('.'))
            {
                return true;
            }
            in_profile = compact == "[profile]";
        } else if in_profile
            && (line.starts_with(&dotted)
                || line
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.trim_start().starts_with('=')))
        {
            return true;
        }
    }
    false
}

/// The manifest of the workspace `crate_dir` belongs to (its own, for a crate on its own),
/// as cargo finds it.
fn workspace_manifest(tc: &Toolchain, crate_dir: &Path) -> Result<PathBuf> {
    let manifest = crate_dir.join("Cargo.toml");
    let out = clean(&mut Command::new(&tc.cargo))
        .env("RUSTC", &tc.rustc)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .map_err(|source| Error::Io {
            what: format!("running {}", tc.cargo.display()),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Manifest {
            path: manifest,
            message: format!(
                "cargo cannot locate its workspace: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Whether the crate's workspace defines the guest profile itself (then it is used as is).
pub fn defines_guest_profile(tc: &Toolchain, crate_dir: &Path) -> Result<bool> {
    let root = workspace_manifest(tc, crate_dir)?;
    let text = std::fs::read_to_string(&root).map_err(|source| Error::Io {
        what: format!("reading {}", root.display()),
        source,
    })?;
    Ok(manifest_defines_profile(&text, PROFILE))
}

/// Builds one guest crate; returns the path of its core module.
///
/// Each crate is built on its own so the `strategy`/`projector` features of `tapedeck-guest`
/// are never unified across guests. A crate whose workspace has no `[profile.guest]` gets
/// [`PROFILE_SETTINGS`] (cargo `--config profile.guest.*`), so any guest crate builds; one
/// that has it is built with its own (cargo lets `--config` override a manifest, so the
/// settings are passed only when the manifest has none).
pub fn build(tc: &Toolchain, crate_dir: &Path, target_dir: &Path) -> Result<PathBuf> {
    let name = package_name(crate_dir)?;
    let own_profile = defines_guest_profile(tc, crate_dir)?;
    let mut cmd = Command::new(&tc.cargo);
    if !own_profile {
        for (key, value) in PROFILE_SETTINGS {
            cmd.arg("--config")
                .arg(format!("profile.{PROFILE}.{key}={value}"));
        }
    }
    clean(&mut cmd)
        .env("RUSTC", &tc.rustc)
        .arg("build")
        .arg("--lib")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .args([
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--message-format",
            "short",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if tc.build_std {
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .arg("-Zbuild-std=std,panic_abort");
    }
    // The toolchain's own bin dir first, so its rustdoc/rust-lld are found.
    if let Some(bin) = tc.rustc.parent() {
        let mut path = OsString::from(bin);
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        cmd.env("PATH", path);
    }
    let out = cmd.output().map_err(|source| Error::Io {
        what: format!("running {}", tc.cargo.display()),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        return Err(Error::Cargo {
            krate: crate_dir.to_path_buf(),
            status: out.status.to_string(),
            stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let artifact = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !artifact.is_file() {
        return Err(Error::NoArtifact {
            krate: crate_dir.to_path_buf(),
            expected: artifact,
        });
    }
    Ok(artifact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_profile_is_found_in_any_toml_spelling() {
        for text in [
            "[profile.guest]\nlto = true\n",
            "[ profile.guest ]\n",
            "[profile.guest.package.foo]\nopt-level = 1\n",
            "[profile]\nguest = { inherits = \"release\" }\n",
            "[profile]\nguest.inherits = \"release\"\n",
        ] {
            assert!(manifest_defines_profile(text, "guest"), "{text}");
        }
        for text in [
            "[package]\nname = \"guest\"\n",
            "[profile.guests]\n",
            "# [profile.guest]\n",
            "[profile.release]\nguest = 1\n",
        ] {
            assert!(!manifest_defines_profile(text, "guest"), "{text}");
        }
    }

    #[test]
    fn package_name_reads_the_package_section_only() {
        let dir = std::env::temp_dir().join(format!("tdgb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nname = \"nope\"\n[package]\nversion = \"1\"\nname    =   \"my-guest\"\n[lib]\nname = \"x\"\n",
        )
        .unwrap();
        assert_eq!(package_name(&dir).unwrap(), "my-guest");
        std::fs::write(dir.join("Cargo.toml"), "[lib]\nname = \"x\"\n").unwrap();
        assert!(
            package_name(&dir)
                .unwrap_err()
                .to_string()
                .contains("no `name`")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
