//! Tapedeck: replay and backtest harness for trading bots with strategies and projectors as
//! WebAssembly components.
//!
//! - [`runtime`]: the wasmtime engine, module loading/caching, instances with fuel and memory caps.
//! - [`event`]: the envelope every store holds, with exact decimal payloads.
//! - [`store`]: the `EventSource` seam: the embedded file store (log, snapshots, Parquet
//!   index) and a memory store.
//! - [`import`]: venue captures into a store (Binance).
//! - [`replay`] and [`diff`]: modules over streams, state diffed against stored snapshots.
//! - [`venue`] and [`regress`]: the simulated venue and baseline-vs-candidate regression.
//! - [`report`], [`html`], [`artifacts`]: run directories.
//! - [`snapshot`] and [`testing`]: projections under insta-style snapshot tests.
//! - [`fixtures`], [`synth`]: seeded generated data; [`sim`]: the codec-level market-order
//!   PnL the strategy bench uses to compare native and Wasm runs; [`bench`]: `tapedeck bench`.

pub mod artifacts;
pub mod bench;
pub mod diff;
pub mod error;
pub mod event;
pub mod fixtures;
pub mod html;
pub mod import;
pub mod outputs;
pub mod regress;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod sim;
pub mod snapshot;
pub mod store;
pub mod synth;
pub mod testing;
pub mod venue;

pub use error::{Error, Result};

/// The Wasm codec and guest-facing types, shared with guests.
pub use tapedeck_guest::codec;
