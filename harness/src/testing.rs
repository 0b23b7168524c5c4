//! Test helpers for projector authors: snapshot-test a projector over a store's streams with
//! insta, one snapshot per stream, maps sorted, volatile paths redacted.
//!
//! ```ignore
//! #[test]
//! fn positions() {
//!     tapedeck::assert_projection!(POSITIONS_WASM, "fixtures/store", "exec:*");
//! }
//! ```
//! Snapshots go where insta puts them (`snapshots/` beside the test file); review changes with
//! `cargo insta review`; CI runs with `INSTA_UPDATE=no`.

use std::path::Path;
use std::sync::OnceLock;

pub use insta;

use crate::replay::Plugin;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::snapshot::{Points, take};

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            max_instances: 32,
            ..RuntimeConfig::default()
        })
        .expect("a wasmtime runtime")
    })
}

/// The projector's state at the end of every stream of `store` matching `streams`, as
/// (snapshot suffix, state); the suffix is the stream key as a [`crate::names::file_name`], so
/// two streams never share a snapshot (`exec:sim:SYM1` is `@exec%3Asim%3ASYM1`).
/// Panics with the reason on any error: this is for tests.
pub fn projection_states(
    wasm: &str,
    store: &str,
    streams: &str,
) -> Vec<(String, serde_json::Value)> {
    let rt = runtime();
    let module = rt
        .load(Path::new(wasm))
        .unwrap_or_else(|e| panic!("loading {wasm}: {e}"));
    let source = crate::store::open(store).unwrap_or_else(|e| panic!("opening {store}: {e}"));
    let taken = take(
        rt,
        source.as_ref(),
        &Plugin::new(module, ""),
        streams,
        &Points::End,
        &[],
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !taken.is_empty(),
        "no stream of {store} matches {streams:?}"
    );
    taken
        .into_iter()
        .map(|t| (crate::names::file_name(&t.stream), t.state))
        .collect()
}

/// Snapshot-tests a projector module over a store: one insta JSON snapshot per matching stream
/// (the state at its end), maps sorted; optional insta redactions.
///
/// `assert_projection!(WASM, STORE, STREAM_GLOB)` or
/// `assert_projection!(WASM, STORE, STREAM_GLOB, redactions = [".orders.*.venue_order_id"])`.
#[macro_export]
macro_rules! assert_projection {
    ($wasm:expr, $store:expr, $streams:expr) => {
        $crate::assert_projection!($wasm, $store, $streams, redactions = [])
    };
    ($wasm:expr, $store:expr, $streams:expr, redactions = [$($path:expr),* $(,)?]) => {{
        for (suffix, state) in $crate::testing::projection_states($wasm, $store, $streams) {
            let mut settings = $crate::testing::insta::Settings::clone_current();
            settings.set_sort_maps(true);
            settings.set_snapshot_suffix(suffix);
            $( settings.add_redaction($path, "[redacted]"); )*
            settings.bind(|| {
                $crate::testing::insta::assert_json_snapshot!(state);
            });
        }
    }};
}
