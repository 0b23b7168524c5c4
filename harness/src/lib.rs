//! Tapedeck: replay and backtest harness for trading bots with strategies and projectors as
//! WebAssembly components.
//!
//! - [`runtime`]: the wasmtime engine, module loading/caching, instances with fuel and memory caps.
//! - [`event`]: the envelope every store holds, with exact decimal payloads.
//! - [`store`]: the `EventSource`/`EventSink` seam and [`store::StoreUri`]: the embedded file
//!   store (log, snapshots, Parquet index), PostgreSQL, and a memory store.
//! - [`import`]: venue captures into a store (Binance).
//! - [`replay`] and [`diff`]: modules over streams, state diffed against stored snapshots.
//! - [`decision`]: strategy outputs as typed values, handed from replay to the venue, the
//!   regression and the reports (JSON only where a file is written).
//! - [`venue`], [`stats`], [`regress`] and [`backtest`]: the simulated venue (run inside the
//!   replay loop), backtest statistics, baseline-vs-candidate regression, one strategy's backtest;
//!   [`equity_log`]: per-event equity spooled to disk for the drawdown of several streams.
//! - [`recorder`]: the recorder service (`tapedeck record`): inputs, WAL, sinks.
//! - [`live`]: live sessions (`tapedeck live`): the recorder, strategies on its durable
//!   events, a paper venue, hot swap, shadow and rollback behind a control API.
//! - [`report`]: run directories (run card, Markdown, JUnit, HTML, Parquet); [`rerun`]: a run
//!   card run again, and two run directories compared.
//! - [`snapshot`] and `testing` (feature `testing`): projections under insta-style snapshot
//!   tests.
//! - [`glob`], [`time`], [`hash`], [`names`], [`curve`]: small shared helpers (stream globs,
//!   calendar times, module hashes, stream keys as file names, bounded curves for plots).
//!
//! The command line is the `tapedeck-cli` crate; the fixture generator, synthetic data and
//! benches are `tapedeck-dev`.

#[cfg(feature = "wasm")]
pub mod backtest;
pub mod curve;
pub mod decision;
pub mod diff;
pub mod equity_log;
pub mod error;
pub mod event;
#[cfg(feature = "recorder")]
pub mod feed;
pub(crate) mod fs;
pub mod glob;
pub mod hash;
pub mod import;
#[cfg(all(feature = "recorder", feature = "wasm"))]
pub mod live;
pub mod names;
#[cfg(feature = "recorder")]
pub mod net;
#[cfg(feature = "wasm")]
pub mod reconcile;
#[cfg(feature = "recorder")]
pub mod recorder;
#[cfg(feature = "wasm")]
pub mod regress;
#[cfg(feature = "wasm")]
pub mod replay;
#[cfg(feature = "wasm")]
pub mod report;
#[cfg(feature = "wasm")]
pub mod rerun;
#[cfg(feature = "wasm")]
pub mod runtime;
pub mod shard;
#[cfg(feature = "wasm")]
pub mod snapshot;
pub mod stats;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod venue;
#[cfg(feature = "wasm")]
pub mod warmup;

pub use error::{Error, Result};

/// The Wasm codec and guest-facing types, shared with guests.
pub use tapedeck_guest::codec;
