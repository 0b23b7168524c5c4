//! The fields of Binance messages: markets, decimal levels, integer and time fields, each
//! checked so that what the importer stores is what replay can pack. Every function returns
//! the reason a line is quarantined as `Err(String)`; none touches a store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Dec, LevelPair};

/// Which Binance market a capture is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Market {
    Spot,
    /// USD-M futures (diffs carry `pu`).
    Usdm,
}

impl Market {
    pub fn name(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::Usdm => "usdm",
        }
    }

    /// The REST depth snapshot's path.
    pub fn depth_path(self) -> &'static str {
        match self {
            Market::Spot => "/api/v3/depth",
            Market::Usdm => "/fapi/v1/depth",
        }
    }
}

impl std::str::FromStr for Market {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "spot" => Ok(Market::Spot),
            "usdm" => Ok(Market::Usdm),
            _ => Err(format!("unknown market {s:?}: spot or usdm")),
        }
    }
}

/// A side of a book: `[[price, qty], ..]` as strings.
pub(super) fn levels(v: &Value) -> Result<Vec<LevelPair>, String> {
    let arr = v.as_array().ok_or("levels are not an array")?;
    arr.iter()
        .map(|l| {
            let p = l
                .get(0)
                .and_then(Value::as_str)
                .ok_or("level without a price string")?;
            let q = l
                .get(1)
                .and_then(Value::as_str)
                .ok_or("level without a quantity string")?;
            Ok([p.parse()?, q.parse()?])
        })
        .collect()
}

pub(super) fn u64_of(v: &Value, k: &str) -> Result<u64, String> {
    v.get(k)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("missing or non-integer `{k}`"))
}

/// Checks that decimals replay packs at one shared scale (a quote's two prices, a book's
/// quantities) fit it: an event is packed at the largest scale of its fields, and one that does
/// not fit would fail every replay of its stream, so its line is quarantined instead.
pub(super) fn one_scale<'a>(
    what: &str,
    ds: impl Iterator<Item = &'a Dec> + Clone,
) -> Result<(), String> {
    let scale = ds.clone().map(|d| d.scale()).max().unwrap_or(0);
    match ds.into_iter().find(|d| d.at(scale).is_none()) {
        Some(d) => Err(format!(
            "{what} {d} does not fit scale {scale}, the largest of its event"
        )),
        None => Ok(()),
    }
}

/// [`one_scale`] for a book's prices and quantities (both sides share the scales).
pub(super) fn book_fits(bids: &[LevelPair], asks: &[LevelPair]) -> Result<(), String> {
    one_scale("price", bids.iter().chain(asks).map(|l| &l[0]))?;
    one_scale("quantity", bids.iter().chain(asks).map(|l| &l[1]))
}

/// A venue time in ms (`E`, `T`) as ns: `None` when absent (or not an integer), an error when
/// it does not fit (the line is quarantined rather than given a wrapped time).
pub(super) fn ms_of(v: &Value, k: &str) -> Result<Option<i64>, String> {
    v.get(k)
        .and_then(Value::as_i64)
        .map(|ms| {
            ms.checked_mul(1_000_000)
                .ok_or_else(|| format!("`{k}` {ms} ms is out of range"))
        })
        .transpose()
}

pub(super) fn dec_of(v: &Value, k: &str) -> Result<Dec, String> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{k}`"))?
        .parse()
}

/// Lowercase hex of raw bytes, for quarantine records of lines that are not text.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
