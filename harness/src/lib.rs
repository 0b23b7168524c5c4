//! Tapedeck: replay and backtest harness for trading bots with strategies and projectors as
//! WebAssembly components.
//!
//! - [`runtime`]: the wasmtime engine, module loading/caching, instances with fuel and memory caps.
//! - [`synth`]: seeded synthetic market data for benches and tests.
//! - [`sim`]: a minimal market-order fill simulator for PnL.
//! - [`bench`]: the figures `tapedeck bench` prints.

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
