//! Parameter sweeps (`tapedeck sweep`): one strategy's config over a grid of points, each
//! point a whole backtest (the harness's one-pass [`tapedeck::backtest::backtest`]) with its
//! own run directory and run card, the results ranked with polars into `sweep.parquet` and
//! reported (ranked table, per-parameter marginals, a heatmap over two parameters).
//!
//! This crate is the only one that links polars; the `tapedeck` binary has it behind its
//! `sweep` feature, so the core build does not compile polars.
//!
//! - [`grid`]: the grid file, parsed and checked.
//! - [`point`]: a point's summary and the ranking metric.
//! - [`run`]: running the points on a pool (points × streams), the sweep card.
//! - [`table`]: the polars table, ranking, marginals, Parquet.
//! - [`report`]: `report.md` and `report.html`.
//! - [`dir`]: the sweep directory's files.
//! - [`shard`]: a shard's partial sweep directory and the merge of shards.

pub mod dir;
pub mod error;
pub mod grid;
pub mod point;
pub mod report;
pub mod run;
pub mod shard;
pub mod table;

pub use error::{Error, Result};
