//! Errors of the harness library. A guest trap is an error of the call that hit it; replay
//! turns it into a finding with stream and seq and keeps going.

use std::fmt;
use std::path::PathBuf;

use tapedeck_guest::codec::CodecError;

use crate::hash::ModuleHash;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("module {module} trapped: {kind}, in the batch of seq {first_seq}..={last_seq}")]
    GuestTrap {
        module: ModuleHash,
        kind: TrapKind,
        first_seq: u64,
        last_seq: u64,
    },

    #[error(
        "{path}: module speaks tapedeck ABI v{guest}, this host speaks v{host}; rebuild its crate against this tapedeck's tapedeck-guest (ABI v{host}) with `tapedeck build <crate-dir>`"
    )]
    AbiMismatch { path: String, guest: u32, host: u32 },

    #[error("module {module} refused its config: {message}")]
    GuestInit { module: ModuleHash, message: String },

    #[error("module {module} refused the snapshot: {message}")]
    GuestRestore { module: ModuleHash, message: String },

    #[error("{path}: not a Tapedeck module: {reason}")]
    NotAModule { path: String, reason: String },

    #[error("module {module} is a {actual}, but a {wanted} was asked for")]
    WrongWorld {
        module: ModuleHash,
        wanted: &'static str,
        actual: &'static str,
    },

    #[error("module {module} trapped earlier ({kind}); its instance cannot be used again")]
    Poisoned { module: ModuleHash, kind: TrapKind },

    #[error("module {module} returned an invalid output batch: {source}")]
    BadOutput {
        module: ModuleHash,
        source: CodecError,
    },

    #[error("{context}: {message}")]
    Engine { context: String, message: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "stream {stream}: seq {got} does not follow the last seq (expected {expected}); streams are gapless from 1"
    )]
    SeqGap {
        stream: String,
        expected: u64,
        got: u64,
    },

    #[error("{}:{line}: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },

    #[error("store {uri}: {reason}")]
    BadStoreUri { uri: String, reason: String },

    #[error(
        "stream {stream}: expected to append after seq {expected}, but the stream is at seq {actual} (another writer got there first); re-read and retry from seq {actual}"
    )]
    Conflict {
        stream: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "store {} is locked by another writer: {holder}; gave up after {waited_secs:.1}s. Run again when it has finished, or wait longer with --lock-timeout SECS",
        store.display()
    )]
    StoreLocked {
        store: PathBuf,
        holder: String,
        waited_secs: f64,
    },

    #[error("PostgreSQL, {context}: {message}")]
    Postgres { context: String, message: String },

    #[error("ClickHouse, {context}: {message}")]
    ClickHouse { context: String, message: String },

    #[error("stream {stream} seq {seq}: {message}")]
    BadEvent {
        stream: String,
        seq: u64,
        message: String,
    },

    /// A `--shard` that names no shard, or an environment that does not say which one.
    #[error("--shard {spec}: {reason}")]
    BadShard { spec: String, reason: String },

    /// Shard run directories that do not make one run.
    #[error("merge: {reason}")]
    Merge { reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An engine-level failure, with the cause chain of `err`.
    pub fn engine(context: impl Into<String>, err: impl fmt::Debug) -> Self {
        // `{:?}` of a wasmtime error prints its whole cause chain.
        Error::Engine {
            context: context.into(),
            message: format!("{err:?}"),
        }
    }

    /// A failure described in words (`{context}: {message}`, no quoting).
    pub fn message(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Engine {
            context: context.into(),
            message: message.into(),
        }
    }

    /// An I/O failure at `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a guest call trapped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapKind {
    /// A Rust panic (which aborts, i.e. executes `unreachable`) or a raw `unreachable`.
    Panic,
    OutOfFuel {
        budget: u64,
    },
    OutOfMemory {
        limit: usize,
        requested: usize,
    },
    /// Any other trap (bad memory access, stack overflow, ...), as wasmtime names it.
    Other(String),
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapKind::Panic => f.write_str("guest panicked (wasm `unreachable` executed)"),
            TrapKind::OutOfFuel { budget } => {
                write!(f, "out of fuel (budget {budget} for this call)")
            }
            TrapKind::OutOfMemory { limit, requested } => {
                write!(
                    f,
                    "out of memory (limit {limit} bytes, asked to grow to {requested})"
                )
            }
            TrapKind::Other(s) => write!(f, "trap: {s}"),
        }
    }
}
