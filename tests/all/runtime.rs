//! Loading, the ABI check, the compile cache, and trap containment.

use tapedeck::codec::{OutputBatch, Payload, Quote};
use tapedeck::error::{Error, TrapKind};
use tapedeck::runtime::{CacheStatus, ModuleKind, Runtime, RuntimeConfig, componentize};
use tapedeck_dev::synth::QuoteGen;
use tapedeck_test_guests as guests;

use super::{batch, load, rt};

#[test]
fn every_guest_loads_as_the_world_it_exports() {
    for (path, kind, name) in [
        (guests::EMA_CROSS, ModuleKind::Strategy, "ema-cross"),
        (guests::EMA_CROSS_V2, ModuleKind::Strategy, "ema-cross-v2"),
        (guests::POSITIONS, ModuleKind::Projector, "positions"),
        (guests::ORDERS, ModuleKind::Projector, "orders"),
        (guests::BOOK, ModuleKind::Projector, "book"),
    ] {
        let m = load(path);
        assert_eq!(m.kind(), kind, "{path}");
        assert_eq!(m.info().name, name);
        assert_eq!(m.info().abi_version, tapedeck_guest::ABI_VERSION);
    }
}

#[test]
fn a_component_file_loads_like_the_core_module_it_came_from() {
    let core = std::fs::read(guests::POSITIONS).unwrap();
    let component = componentize(&core, "positions").unwrap();
    assert_ne!(
        core[..8],
        component[..8],
        "componentize changed the preamble"
    );
    let a = rt().load_bytes(&core, "core").unwrap();
    let b = rt().load_bytes(&component, "component").unwrap();
    assert_eq!(a.kind(), b.kind());
    assert_eq!(a.info(), b.info());
    assert_ne!(a.hash(), b.hash(), "the hash is of the file as given");
}

#[test]
fn abi_mismatch_is_refused_naming_both_versions() {
    let err = rt()
        .load(std::path::Path::new(guests::ABI_SKEW))
        .unwrap_err();
    match &err {
        Error::AbiMismatch { guest, host, .. } => {
            assert_eq!(*host, tapedeck_guest::ABI_VERSION);
            assert_eq!(*guest, tapedeck_guest::ABI_VERSION + 1);
        }
        other => panic!("expected an ABI mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("v{}", tapedeck_guest::ABI_VERSION + 1))
            && msg.contains(&format!("v{}", tapedeck_guest::ABI_VERSION)),
        "{msg}"
    );
    assert!(msg.contains("rebuild"), "{msg}");
}

#[test]
fn a_guest_of_the_v1_contract_is_refused_by_version_and_told_to_rebuild() {
    // Built against the world before the instrument table: it matches neither world of this
    // host, but still says which ABI it speaks.
    let err = rt().load(std::path::Path::new(guests::ABI_V1)).unwrap_err();
    match &err {
        Error::AbiMismatch { guest, host, .. } => {
            assert_eq!((*guest, *host), (1, tapedeck_guest::ABI_VERSION));
        }
        other => panic!("expected an ABI mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("ABI v1") && msg.contains("tapedeck build"),
        "{msg}"
    );
}

#[test]
fn garbage_is_not_a_module() {
    let err = rt()
        .load_bytes(b"definitely not wasm", "junk.wasm")
        .unwrap_err();
    assert!(matches!(err, Error::NotAModule { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("junk.wasm: not a Tapedeck module"),
        "{err}"
    );
    // A valid, empty core module: it componentizes, but exports no world.
    let bare = b"\0asm\x01\0\0\0";
    let err = rt().load_bytes(bare, "bare.wasm").unwrap_err();
    assert!(
        err.to_string()
            .contains("exports neither the `strategy` nor the `projector` world"),
        "{err}"
    );
}

#[test]
fn compiled_modules_are_cached_by_content_hash() {
    // Its own runtime and cache: cached artifacts are mapped into memory by the modules that
    // use them, so this test must not touch the shared runtime's files.
    let dir = std::env::temp_dir().join(format!("tapedeck-cache-test-{}", std::process::id()));
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.clone()),
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let path = std::path::Path::new(guests::ORDERS);
    let m = rt.load(path).unwrap();
    assert_eq!(m.cache(), &CacheStatus::Compiled);
    let cached: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(
        cached[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&m.hash().hex())
    );
    let hit = rt.load(path).unwrap();
    assert_eq!(hit.info(), m.info(), "a cache hit loads the same module");
    assert_eq!(hit.cache(), &CacheStatus::Hit);
    // A corrupt entry is recompiled and replaced, not trusted.
    std::fs::write(&cached[0], b"garbage").unwrap();
    let again = rt.load(path).unwrap();
    assert_eq!(again.info(), m.info());
    assert!(matches!(again.cache(), CacheStatus::Replaced { .. }));
    assert!(std::fs::read(&cached[0]).unwrap().len() > 100, "rewritten");
    // Damage inside the machine code passes wasmtime's header check: before entries carried a
    // MAC this one was deserialized and died with SIGSEGV/SIGTRAP when run.
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 256] {
        *b ^= 0xff;
    }
    std::fs::write(&cached[0], &bytes).unwrap();
    let damaged = rt.load(path).unwrap();
    match damaged.cache() {
        CacheStatus::Replaced { reason } => assert!(reason.contains("MAC"), "{reason}"),
        other => panic!("a damaged entry was used: {other:?}"),
    }
    let mut inst = rt.instantiate(&damaged).unwrap();
    inst.init("null").unwrap();
    inst.on_events(&quotes(1, 4)).unwrap();
    assert_eq!(
        rt.load(path).unwrap().cache(),
        &CacheStatus::Hit,
        "replaced"
    );
    drop((m, hit, again, damaged, inst, rt));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn quotes(first_seq: u64, n: u64) -> Vec<u8> {
    let q = Payload::Quote(Quote {
        bid_px: 100,
        bid_qty: 1,
        ask_px: 101,
        ask_qty: 1,
    });
    batch(first_seq, &vec![(1, q); n as usize])
}

fn misbehaving(mode: &str, at_seq: u64) -> tapedeck::runtime::Instance {
    let mut inst = rt().instantiate(&load(guests::MISBEHAVE)).unwrap();
    inst.init(&format!(r#"{{"mode":"{mode}","at_seq":{at_seq}}}"#))
        .unwrap();
    inst
}

/// The trap hits the batch holding `at_seq`; earlier batches run; the instance is poisoned;
/// a healthy instance in the same runtime keeps going.
fn assert_contained(mode: &str, expect: impl Fn(&TrapKind) -> bool) {
    let mut bad = misbehaving(mode, 25);
    let mut good = rt().instantiate(&load(guests::EMA_CROSS)).unwrap();
    good.init("").unwrap();
    let mut quotes_gen = QuoteGen::new(7, 2);
    let b1 = quotes_gen.batches(10, 10).pop().unwrap();
    bad.on_events(&quotes(1, 10))
        .expect("before the trigger it behaves");
    good.on_events(&b1).unwrap();
    let err = bad.on_events(&quotes(11, 20)).unwrap_err();
    match &err {
        Error::GuestTrap {
            kind,
            first_seq,
            last_seq,
            module,
        } => {
            assert!(expect(kind), "{mode}: unexpected trap kind {kind}");
            assert_eq!((*first_seq, *last_seq), (11, 30));
            assert_eq!(*module, load(guests::MISBEHAVE).hash());
        }
        other => panic!("{mode}: expected a trap, got {other}"),
    }
    assert!(err.to_string().contains("seq 11..=30"), "{err}");
    assert!(matches!(
        bad.on_events(&quotes(31, 1)),
        Err(Error::Poisoned { .. })
    ));
    for b in quotes_gen.batches(1000, 100) {
        good.on_events(&b).expect("other instances are unaffected");
    }
    // And a fresh instance of the same module works.
    let mut fresh = misbehaving(mode, 1_000_000);
    fresh.on_events(&quotes(1, 50)).unwrap();
}

#[test]
fn a_guest_panic_is_a_typed_trap() {
    assert_contained("panic", |k| *k == TrapKind::Panic);
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    assert_contained("spin", |k| matches!(k, TrapKind::OutOfFuel { .. }));
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    assert_contained(
        "hog",
        |k| matches!(k, TrapKind::OutOfMemory { limit, requested } if *limit == 64 << 20 && requested > limit),
    );
}

#[test]
fn outputs_carry_the_seq_of_their_cause() {
    let mut inst = misbehaving("behave", 42);
    let out = inst.on_events(&quotes(40, 5)).unwrap();
    let recs: Vec<_> = OutputBatch::new(&out)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].cause_seq, 42);
}

#[test]
fn a_bad_config_is_refused_with_the_guest_message() {
    let mut inst = rt().instantiate(&load(guests::EMA_CROSS)).unwrap();
    let err = inst.init(r#"{"fast": 0.01, "slow": 0.5}"#).unwrap_err();
    assert!(matches!(err, Error::GuestInit { .. }));
    assert!(err.to_string().contains("need 0 < slow < fast"), "{err}");
    let err = inst.init(r#"{"fastt": 0.3}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
