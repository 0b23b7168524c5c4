//! The guest SDK's compile-time guidance: misuse fails to build, with a message that says
//! what to do. Real wasm32 builds of small throwaway crates. A projector gets a context without
//! order methods: `ctx.market(..)` in a projector fails with "projectors cannot place orders".

use std::path::{Path, PathBuf};

fn guest_crate(name: &str, features: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapedeck-sdk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk")
        .canonicalize()
        .unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
tapedeck-guest = {{ path = {sdk:?}, features = [{features}] }}
serde = {{ version = "1", features = ["derive"] }}

[workspace]

[profile.guest]
inherits = "release"
panic = "abort"
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), body).unwrap();
    dir
}

const STRATEGY: &str = r#"
use tapedeck_guest::{Ctx, Event, Strategy};
#[derive(serde::Serialize, serde::Deserialize)]
pub struct S;
impl Strategy for S {
    type Config = ();
    fn new(_: ()) -> Result<Self, String> { Ok(S) }
    fn on_event(&mut self, _: &Event<'_>, _: &mut Ctx<'_>) {}
}
tapedeck_guest::export_strategy!(S);
"#;

fn build_error(dir: &Path) -> String {
    let tc = tapedeck_guest_build::detect().unwrap();
    // The shared guest target dir already has std built for wasm32.
    let target = PathBuf::from(tapedeck_test_guests::EMA_CROSS)
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    match tapedeck_guest_build::build(&tc, dir, &target) {
        Ok(p) => panic!(
            "{} built ({}), but it should not",
            dir.display(),
            p.display()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn exporting_a_strategy_without_the_feature_says_which_feature() {
    let dir = guest_crate("no_feature_guest", "", STRATEGY);
    let err = build_error(&dir);
    assert!(
        err.contains("export_strategy! needs the `strategy` feature of tapedeck-guest"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn exporting_a_type_that_is_not_a_strategy_says_what_to_implement() {
    let body = "#[derive(serde::Serialize, serde::Deserialize)]\npub struct NotOne;\ntapedeck_guest::export_strategy!(NotOne);\n";
    let dir = guest_crate("not_a_strategy_guest", "\"strategy\"", body);
    let err = build_error(&dir);
    assert!(
        err.contains("is not a Tapedeck strategy")
            || err.contains("impl tapedeck_guest::Strategy for NotOne"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_projector_placing_an_order_does_not_compile_and_says_why() {
    let body = r#"
use tapedeck_guest::{Event, Projector, ProjectorCtx, Side};
#[derive(serde::Serialize, serde::Deserialize)]
pub struct P;
impl Projector for P {
    type Config = ();
    fn new(_: ()) -> Result<Self, String> { Ok(P) }
    fn on_event(&mut self, ev: &Event<'_>, ctx: &mut ProjectorCtx<'_>) {
        ctx.market(ev, Side::Buy, 1.0);
    }
}
tapedeck_guest::export_projector!(P);
"#;
    let dir = guest_crate("ordering_projector_guest", "\"projector\"", body);
    let err = build_error(&dir);
    assert!(err.contains("projectors cannot place orders"), "{err}");
    assert!(err.contains("orders come from a `Strategy`"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_projector_cannot_log_either() {
    // The host keeps no projector output, so there is nothing to log to: method not found.
    let body = r#"
use tapedeck_guest::{Event, LogLevel, Projector, ProjectorCtx};
#[derive(serde::Serialize, serde::Deserialize)]
pub struct P;
impl Projector for P {
    type Config = ();
    fn new(_: ()) -> Result<Self, String> { Ok(P) }
    fn on_event(&mut self, _: &Event<'_>, ctx: &mut ProjectorCtx<'_>) {
        ctx.log(LogLevel::Info, "seen");
    }
}
tapedeck_guest::export_projector!(P);
"#;
    let dir = guest_crate("logging_projector_guest", "\"projector\"", body);
    let err = build_error(&dir);
    assert!(err.contains("no method named `log`"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
