//! Python and JavaScript guests: `strategies/ema-cross-py` and `strategies/ema-cross-js`,
//! built from source by the test-guests build script (componentize-py / componentize-js,
//! imports none), decide exactly as the Rust `ema-cross` on the fixture store and on the real
//! capture; snapshot → restore continues identically; traps stay in their instance.
//!
//! Where the toolchains are not installed (`scripts/setup.sh --guest-langs`) these tests say
//! so and skip; under CI (`CI` set) that is a failure.

use tapedeck::codec::{OutputBatch, Payload, Quote};
use tapedeck::error::{Error, TrapKind};
use tapedeck::regress::{RegressReport, regress};
use tapedeck::replay::{Plugin, ReplayOptions};
use tapedeck::runtime::{Budget, Module};
use tapedeck::store::FileStore;
use tapedeck::venue::VenueConfig;
use tapedeck_dev::synth::QuoteGen;
use tapedeck_test_guests as guests;

use super::{batch, fixtures, load, rt, tmp};

/// The Python and JavaScript ema-cross, each with its name, loaded once for all these tests
/// (compiling 30 MB of components takes a while); those not built are skipped here (said on
/// stderr; a failure under CI).
fn script_guests() -> Vec<(&'static str, Module)> {
    static LOADED: std::sync::OnceLock<Vec<(&'static str, Module)>> = std::sync::OnceLock::new();
    LOADED.get_or_init(load_script_guests).clone()
}

fn load_script_guests() -> Vec<(&'static str, Module)> {
    let mut out = Vec::new();
    for (name, path) in [
        ("python", guests::EMA_CROSS_PY),
        ("js", guests::EMA_CROSS_JS),
    ] {
        match path {
            Some(p) => out.push((name, load(p))),
            None if std::env::var_os("CI").is_some() => panic!(
                "the {name} guest toolchain is not installed under CI: \
                 scripts/setup.sh --guest-langs must run first"
            ),
            None => {
                eprintln!(
                    "skipping the {name} ema-cross: its toolchain is not installed \
                     (scripts/setup.sh --guest-langs)"
                );
            }
        }
    }
    out
}

fn regress_on(store: &FileStore, candidate: &Module) -> RegressReport {
    regress(
        rt(),
        store,
        &Plugin::new(load(guests::EMA_CROSS), ""),
        &Plugin::new(candidate.clone(), ""),
        &ReplayOptions {
            jobs: 2,
            ..Default::default()
        },
        &VenueConfig::default(),
    )
    .unwrap()
}

fn assert_same_as_rust(r: &RegressReport, lang: &str) {
    assert_eq!(r.diverged_streams, 0, "{lang}: {:#?}", r.streams);
    // Decisions, trades, PnL, drawdown, fees, turnover: all equal, to the bit.
    assert_eq!(r.baseline, r.candidate, "{lang}");
    for s in &r.streams {
        assert_eq!(s.decisions[0], s.decisions[1], "{lang}: {}", s.stream);
    }
}

#[test]
fn python_and_js_ema_cross_decide_as_the_rust_one_on_the_fixture_store() {
    let store = FileStore::open(fixtures()).unwrap();
    for (lang, m) in script_guests() {
        let r = regress_on(&store, &m);
        assert_same_as_rust(&r, lang);
        assert!(r.baseline.trades > 5, "the fixtures make it trade");
    }
}

#[test]
fn python_and_js_ema_cross_decide_as_the_rust_one_on_the_real_capture() {
    let Some(capture) = super::binance::capture() else {
        return;
    };
    let guests = script_guests();
    if guests.is_empty() {
        return;
    }
    let dir = tmp("capture");
    let mut store = FileStore::create(&dir, tapedeck::store::FileStoreOptions::default()).unwrap();
    let mut imp = tapedeck::import::binance::Importer::new(&mut store, None, None);
    imp.import_file(&capture).unwrap();
    imp.finish().unwrap();
    drop(store);
    let store = FileStore::open(&dir).unwrap();
    for (lang, m) in guests {
        let r = regress_on(&store, &m);
        assert_same_as_rust(&r, lang);
        assert!(
            r.baseline.decisions > 10,
            "{lang}: it trades on the capture"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Outputs of `batches` through one instance, or with a snapshot → restore into a fresh
/// instance after `cut` batches.
fn run(m: &Module, batches: &[Vec<u8>], cut: Option<usize>) -> Vec<Vec<u8>> {
    let mut inst = rt().instantiate(m).unwrap();
    inst.init("").unwrap();
    let mut out = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        if cut == Some(i) {
            let snap = inst.snapshot().unwrap();
            inst = rt().instantiate(m).unwrap();
            inst.restore(&snap).unwrap();
        }
        out.push(inst.on_events(b).unwrap());
    }
    out
}

#[test]
fn python_and_js_snapshot_then_restore_continue_identically() {
    let batches = QuoteGen::new(11, 3).batches(4000, 250);
    let rust = run(&load(guests::EMA_CROSS), &batches, None);
    for (lang, m) in script_guests() {
        let whole = run(&m, &batches, None);
        assert_eq!(whole, rust, "{lang}: the same output bytes as Rust's");
        assert!(
            whole
                .iter()
                .any(|b| OutputBatch::new(b).unwrap().announced() > 0),
            "{lang}: it trades"
        );
        assert_eq!(
            run(&m, &batches, Some(7)),
            whole,
            "{lang}: restored at batch 7"
        );
        // A snapshot that is not one is refused with the guest's message, not a trap.
        let mut inst = rt().instantiate(&m).unwrap();
        let err = inst.restore(b"{not json").unwrap_err();
        assert!(matches!(err, Error::GuestRestore { .. }), "{lang}: {err}");
        assert!(
            err.to_string().contains("does not restore"),
            "{lang}: {err}"
        );
    }
}

#[test]
fn python_and_js_refuse_a_bad_config_with_their_message() {
    for (lang, m) in script_guests() {
        let mut inst = rt().instantiate(&m).unwrap();
        let err = inst.init(r#"{"fast": 0.01, "slow": 0.5}"#).unwrap_err();
        assert!(matches!(err, Error::GuestInit { .. }), "{lang}: {err}");
        assert!(
            err.to_string().contains("need 0 < slow < fast"),
            "{lang}: {err}"
        );
        let err = inst.init(r#"{"fastt": 0.3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{lang}: {err}");
    }
}

#[test]
fn python_and_js_traps_stay_in_their_instance() {
    let quotes = |first: u64, n: usize| {
        let q = Payload::Quote(Quote {
            bid_px: 100,
            bid_qty: 1,
            ask_px: 101,
            ask_qty: 1,
        });
        batch(first, &vec![(1, q); n])
    };
    for (lang, m) in script_guests() {
        // Out of fuel: enough to instantiate and init, far too little for 5000 events.
        let starved = m.with_budget(Budget {
            fuel_per_event: 10,
            fuel_per_call: 2_000_000,
            ..m.budget()
        });
        let mut inst = rt().instantiate(&m).unwrap();
        inst.init("").unwrap();
        let mut bad = rt().instantiate(&starved).unwrap();
        bad.init("").unwrap();
        let err = bad.on_events(&quotes(1, 5000)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::GuestTrap {
                    kind: TrapKind::OutOfFuel { .. },
                    first_seq: 1,
                    last_seq: 5000,
                    ..
                }
            ),
            "{lang}: {err}"
        );
        assert!(matches!(
            bad.on_events(&quotes(5001, 1)),
            Err(Error::Poisoned { .. })
        ));
        // A batch the guest's codec refuses (a host bug) is a trap too, with its seqs.
        let mut broken = quotes(1, 3);
        broken[16 + 4] = 99; // the first event's kind
        let mut victim = rt().instantiate(&m).unwrap();
        victim.init("").unwrap();
        let err = victim.on_events(&broken).unwrap_err();
        assert!(matches!(err, Error::GuestTrap { .. }), "{lang}: {err}");
        // The healthy instance of the same module goes on.
        inst.on_events(&quotes(1, 500))
            .unwrap_or_else(|e| panic!("{lang}: {e}"));
    }
}

#[test]
fn a_component_that_imports_anything_is_refused_naming_the_import_free_builds() {
    // A component importing `clock: func()`, as a build with WASI would import its clocks.
    const IMPORTS_A_CLOCK: &[u8] = &[
        0, 97, 115, 109, 13, 0, 1, 0, 7, 5, 1, 0x40, 0, 1, 0, 10, 10, 1, 0, 5, b'c', b'l', b'o',
        b'c', b'k', 1, 0,
    ];
    let err = rt()
        .load_bytes(IMPORTS_A_CLOCK, "clocked.wasm")
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::NotAModule { .. }), "{msg}");
    for needle in [
        "imports clock",
        "--stub-wasi",
        "-d stdio random clocks http fetch-event",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
}

/// Runs `cmd` in `dir`; panics with its output when it fails.
fn run_ok(dir: &std::path::Path, cmd: &mut std::process::Command) {
    let out = cmd.current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} in {}: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn new_python_and_js_guests_pass_their_own_native_tests() {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let python = std::env::var_os("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".cache/tapedeck-py/bin/python3"))
        .filter(|p| p.is_file());
    let root = tmp("new");
    for kind in ["strategy", "projector"] {
        if let Some(python) = &python {
            let dir = root.join(format!("py-{kind}"));
            let out = super::tapedeck(&[
                "new",
                kind,
                "my-guest",
                "--lang",
                "python",
                "--path",
                dir.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{out:?}");
            run_ok(
                &dir,
                std::process::Command::new(python)
                    .args(["-m", "unittest", "-q"])
                    .env("PYTHONPATH", sdk.join("python"))
                    .env("PYTHONDONTWRITEBYTECODE", "1"),
            );
        }
        let dir = root.join(format!("js-{kind}"));
        let out = super::tapedeck(&[
            "new",
            kind,
            "my-guest",
            "--lang",
            "js",
            "--path",
            dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        if guests::EMA_CROSS_JS.is_some() {
            // The SDK is a file: dependency (a link); nothing is fetched.
            run_ok(
                &dir,
                std::process::Command::new("npm").args([
                    "install",
                    "--silent",
                    "--no-audit",
                    "--no-fund",
                ]),
            );
            run_ok(&dir, std::process::Command::new("node").arg("--test"));
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}
