//! Errors of the sweep library: a grid that does not parse (naming its file and key), a
//! point's backtest that could not run (naming the point), the table, a merge refused.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `key` is the TOML path of the offending value (`grid.fast`, `point[2].slow`), empty
    /// when the file does not parse at all.
    #[error("{file}: {}{reason}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Grid {
        file: String,
        key: String,
        reason: String,
    },

    #[error("point {point} ({params}): {source}")]
    Point {
        point: u32,
        params: String,
        #[source]
        source: tapedeck::Error,
    },

    #[error(transparent)]
    Harness(#[from] tapedeck::Error),

    #[error("the sweep's table: {0}")]
    Table(#[from] polars::error::PolarsError),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },

    #[error("cannot merge: {reason}")]
    Merge { reason: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
