//! Tapedeck's development tools, kept out of the library: the seeded fixture generator
//! (`tapedeck fixtures generate`), synthetic market data, the codec-level market simulation the
//! strategy bench compares native and Wasm runs with, and the benches behind `tapedeck bench`.
//! They link the repository's guests natively (ema-cross, book, positions, orders), which the
//! library does not.

pub mod bench;
pub mod bench_backtest;
pub mod bench_clickhouse;
pub mod bench_record;
pub mod fixtures;
pub mod sim;
pub mod synth;
pub mod workload;
