//! Builds every guest crate under `strategies/` to a core Wasm module and writes their paths
//! as constants (like wasmtime's test-programs artifacts crate). The Python and JavaScript
//! guests are built to components when their toolchains are installed
//! (`scripts/setup.sh --guest-langs`), and skipped with a warning (their constants `None`)
//! when not; a component is rebuilt only when its inputs changed (componentize-py takes
//! ~20 s, componentize-js ~13 s).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const GUESTS: &[(&str, &str)] = &[
    ("EMA_CROSS", "strategies/ema-cross"),
    ("EMA_CROSS_V2", "strategies/ema-cross-v2"),
    ("POSITIONS", "strategies/positions"),
    ("ORDERS", "strategies/orders"),
    ("BOOK", "strategies/book"),
    ("MISBEHAVE", "strategies/testing/misbehave"),
    ("ABI_SKEW", "strategies/testing/abi-skew"),
    ("ABI_V1", "strategies/testing/abi-v1"),
];

/// Python and JavaScript guests (folders with a pyproject.toml or a package.json).
const SCRIPT_GUESTS: &[(&str, &str)] = &[
    ("EMA_CROSS_PY", "strategies/ema-cross-py"),
    ("EMA_CROSS_JS", "strategies/ema-cross-js"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for p in ["strategies", "guest-sdk", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=TAPEDECK_WASM_RUSTC");
    println!("cargo:rerun-if-env-changed=TAPEDECK_WASM_CARGO");
    println!("cargo:rerun-if-env-changed=TAPEDECK_COMPONENTIZE_PY");
    println!("cargo:rerun-if-env-changed=TAPEDECK_COMPONENTIZE_JS");
    // Two checkouts sharing one target dir share this script's output, and with it the paths
    // above: rerun when cargo is started from somewhere else (the inner builds are no-ops
    // when nothing changed).
    println!("cargo:rerun-if-env-changed=PWD");

    let tc = tapedeck_guest_build::detect().unwrap_or_else(|e| panic!("{e}"));
    let target_dir = guest_target_dir(&out_dir);
    let mut code = String::new();
    writeln!(
        code,
        "/// The toolchain that built the guests.\npub const TOOLCHAIN: &str = {:?};",
        tc.version
    )
    .unwrap();
    let mut all = String::new();
    for (konst, dir) in GUESTS {
        let wasm = tapedeck_guest_build::build(&tc, &root.join(dir), &target_dir)
            .unwrap_or_else(|e| panic!("{e}"));
        writeln!(
            code,
            "/// Core module built from `{dir}`.\npub const {konst}: &str = {:?};",
            wasm.display().to_string()
        )
        .unwrap();
        write!(all, "({konst:?}, {konst}), ").unwrap();
    }
    writeln!(
        code,
        "/// Every guest, by constant name.\npub const ALL: &[(&str, &str)] = &[{all}];"
    )
    .unwrap();
    for (konst, dir) in SCRIPT_GUESTS {
        let path = build_script_guest(&root.join(dir), &target_dir.join("script"));
        writeln!(
            code,
            "/// Component built from `{dir}`; `None` when its toolchain is not installed.\n\
             pub const {konst}: Option<&str> = {path:?};"
        )
        .unwrap();
    }
    std::fs::write(out_dir.join("guests.rs"), code).unwrap();
}

/// One guest target dir per cargo target dir (`<target>/tapedeck-guests`), shared across
/// profiles and with `tapedeck build`, so std is built for wasm once.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    let build = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .expect("OUT_DIR is under a `build` dir");
    build
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("tapedeck-guests")
}

/// Builds a Python or JavaScript guest folder unless its component is there with the same
/// inputs; `None` (with a warning) when the toolchain is missing.
fn build_script_guest(dir: &Path, out_dir: &Path) -> Option<String> {
    use tapedeck_guest_build::script::{self, Lang};
    let lang = Lang::of(dir).unwrap_or_else(|e| panic!("{e}"));
    let digest = match script::inputs_digest(dir, lang) {
        Ok(d) => d,
        Err(e) => {
            println!("cargo:warning=not building {}: {e}", dir.display());
            return None;
        }
    };
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let out = out_dir.join(format!("{name}.wasm"));
    let stamp = out_dir.join(format!("{name}.digest"));
    let fresh = out.is_file()
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == digest.to_string());
    if !fresh {
        let stage = out_dir.join(format!("stage-{name}"));
        script::build(dir, lang, &stage, &out).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&stage);
        std::fs::write(&stamp, digest.to_string()).unwrap();
    }
    Some(out.display().to_string())
}
