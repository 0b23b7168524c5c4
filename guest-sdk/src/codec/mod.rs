//! The batch codec: the packed, versioned, little-endian byte layouts that cross the Wasm
//! boundary on the hot path. This one module is compiled into the host and into every guest,
//! so the two sides cannot drift.
//!
//! # Event batch, layout v1
//! ```text
//! header   16 bytes   magic "TDEV" | layout u16 | flags u16 (0) | count u32 | reserved u32 (0)
//! event    32 bytes   len u32 (whole record) | kind u8 | px_scale u8 | qty_scale u8 | 0u8
//!                     | stream u32 | instrument u32 | seq u64 | time_ns i64
//! payload  len - 32   per kind, see `Payload`; strings and byte strings are u32 length + bytes,
//!                     book sides are u32 count + count * (price i64, qty i64),
//!                     decimals that are not a price or a quantity are i64 mantissa + u8 scale
//! ```
//! # Output batch, layout v1
//! ```text
//! header   16 bytes   magic "TDOU" | layout u16 | flags u16 (0) | count u32 | reserved u32 (0)
//! record   16 bytes   len u32 | kind u8 | 0u8 x3 | cause_seq u64
//! body     len - 16   per kind, see `Output`
//! ```
//! Prices and quantities are fixed-point: an integer mantissa and a per-event scale
//! (`value = mantissa / 10^scale`), so books and positions rebuild exactly.

use std::fmt;

/// Version of the byte layouts; part of the ABI version a module exports.
pub const LAYOUT_VERSION: u16 = 1;
pub const EVENT_MAGIC: [u8; 4] = *b"TDEV";
pub const OUTPUT_MAGIC: [u8; 4] = *b"TDOU";
pub const BATCH_HEADER_LEN: usize = 16;
pub const EVENT_HEADER_LEN: usize = 32;
pub const OUTPUT_HEADER_LEN: usize = 16;

/// Why a byte string is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The buffer ended before a header, record or field did.
    Truncated {
        at: usize,
        needed: usize,
        len: usize,
    },
    BadMagic {
        found: [u8; 4],
        expected: [u8; 4],
    },
    /// A batch written by a different layout version.
    LayoutVersion {
        found: u16,
        expected: u16,
    },
    UnknownKind {
        at: usize,
        kind: u8,
    },
    /// A record's length field disagrees with its contents.
    BadLength {
        at: usize,
        len: u32,
    },
    BadEnum {
        at: usize,
        field: &'static str,
        value: u8,
    },
    BadUtf8 {
        at: usize,
    },
    /// The header promised more or fewer records than the buffer holds.
    CountMismatch {
        header: u32,
        found: u32,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { at, needed, len } => {
                write!(
                    f,
                    "batch truncated: {needed} bytes needed at offset {at}, buffer has {len}"
                )
            }
            Self::BadMagic { found, expected } => {
                write!(f, "bad batch magic {found:?}, expected {expected:?}")
            }
            Self::LayoutVersion { found, expected } => write!(
                f,
                "batch layout v{found} is not the v{expected} this side speaks; rebuild against the same tapedeck-guest"
            ),
            Self::UnknownKind { at, kind } => {
                write!(f, "unknown record kind {kind} at offset {at}")
            }
            Self::BadLength { at, len } => {
                write!(f, "record at offset {at} has inconsistent length {len}")
            }
            Self::BadEnum { at, field, value } => {
                write!(f, "invalid {field} value {value} in record at offset {at}")
            }
            Self::BadUtf8 { at } => write!(f, "invalid UTF-8 in record at offset {at}"),
            Self::CountMismatch { header, found } => {
                write!(f, "batch header says {header} records, found {found}")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// A fixed-point decimal: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    pub mantissa: i64,
    pub scale: u8,
}

impl Decimal {
    pub const fn new(mantissa: i64, scale: u8) -> Self {
        Self { mantissa, scale }
    }

    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / pow10(self.scale)
    }
}

/// 10^scale as f64, for the f64 views guests use for their math.
#[inline]
pub fn pow10(scale: u8) -> f64 {
    const P: [f64; 19] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18,
    ];
    match P.get(scale as usize) {
        Some(p) => *p,
        None => 10f64.powi(scale as i32),
    }
}

/// A one-byte enum on the wire.
pub(crate) trait WireEnum: Sized {
    const FIELD: &'static str;
    fn from_wire(v: u8) -> Option<Self>;
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $variant = $value),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn from_u8(v: u8) -> Option<Self> {
                match v { $($value => Some(Self::$variant),)+ _ => None }
            }

        }

        impl WireEnum for $name {
            const FIELD: &'static str = $field;
            fn from_wire(v: u8) -> Option<Self> {
                Self::from_u8(v)
            }
        }
    };
}

wire_enum!(
    /// The type of a recorded event; the byte in every event record.
    EventKind, "event kind" {
        Quote = 1,
        Trade = 2,
        BookSnapshot = 3,
        BookDelta = 4,
        OrderSubmitted = 5,
        OrderAcked = 6,
        OrderRejected = 7,
        OrderCancelled = 8,
        Fill = 9,
        Position = 10,
        Balance = 11,
        RiskDecision = 12,
        GuardrailTransition = 13,
        Funding = 14,
        /// Anything else: a type name and JSON bytes, so no recorded event is unrepresentable.
        Custom = 15,
    }
);

wire_enum!(Side, "side" { Buy = 1, Sell = 2 });
wire_enum!(
    /// Aggressor side of a trade, when the venue says.
    Aggressor, "aggressor" { Unknown = 0, Buy = 1, Sell = 2 }
);
wire_enum!(OrderType, "order type" { Limit = 1, Market = 2 });
wire_enum!(TimeInForce, "time in force" { Gtc = 1, Ioc = 2, Fok = 3, PostOnly = 4 });
wire_enum!(Liquidity, "liquidity" { Unknown = 0, Maker = 1, Taker = 2 });
wire_enum!(RiskVerdict, "risk decision" { Allow = 1, Deny = 2, Reduce = 3 });
wire_enum!(LogLevel, "log level" { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4 });

impl Side {
    /// +1 for buy, -1 for sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

mod events;
mod outputs;
mod types;
mod wire;

pub use events::{EventBatch, EventBatchWriter};
pub use outputs::{NewOrder, Output, OutputBatch, OutputBatchWriter, OutputRecord};
pub use types::*;

#[cfg(test)]
mod tests;
