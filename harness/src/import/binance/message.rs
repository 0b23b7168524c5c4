//! Binance messages as both the importer and the live client read them: a REST depth snapshot,
//! or a combined-stream message (`depthUpdate`, `bookTicker`, `trade`, wrapped in
//! `{"stream":..,"data":..}` or not). One mapping, so a recorded session and an imported
//! capture of it hold the same events.
//!
//! A stream message is read in two steps: its [`Head`] (symbol and kind), then its
//! [`Payload`]. The importer decides from the head whether it read the line in an earlier run,
//! before it looks at (and may quarantine) the fields.

use serde_json::Value;

use super::parse::{book_fits, dec_of, levels, ms_of, one_scale, u64_of};
use super::sync::Diff;
use crate::event::{Body, LevelPair, SideName};

/// A capture line's capture time (ns) and JSON: `<local_ts_ns> <json>`.
pub fn capture_line(line: &str) -> Result<(i64, &str), String> {
    let (ts, json) = line
        .split_once(' ')
        .ok_or("expected `<local_ts_ns> <json>`")?;
    let local = ts
        .parse()
        .map_err(|_| format!("bad local timestamp {ts:?}"))?;
    Ok((local, json))
}

/// A REST depth snapshot (`{"lastUpdateId":..,"bids":..,"asks":..}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub last_update_id: u64,
    pub bids: Vec<LevelPair>,
    pub asks: Vec<LevelPair>,
}

impl Snapshot {
    /// `Ok(None)` when `v` is not a snapshot; `Err` (the reason) when it is a broken one.
    pub fn parse(v: &Value) -> Result<Option<Snapshot>, String> {
        let Some(id) = v.get("lastUpdateId") else {
            return Ok(None);
        };
        let last_update_id = id.as_u64().ok_or("non-integer lastUpdateId")?;
        let (bids, asks) = (levels(&v["bids"])?, levels(&v["asks"])?);
        book_fits(&bids, &asks)?;
        Ok(Some(Snapshot {
            last_update_id,
            bids,
            asks,
        }))
    }

    /// The `book_snapshot` event body.
    pub fn into_body(self) -> Body {
        Body::BookSnapshot {
            update_id: self.last_update_id,
            bids: self.bids,
            asks: self.asks,
        }
    }
}

/// What a stream message is about.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The message itself (the `data` of a combined-stream message).
    pub data: &'a Value,
    /// `s`, as sent (the stream key upper-cases it).
    pub symbol: &'a str,
    /// `e`, absent from spot `bookTicker` messages.
    pub kind: Option<&'a str>,
    /// Whether it can only be a USD-M futures message (diffs carry `pu`, futures tickers an
    /// `e` of `bookTicker`).
    pub futures: bool,
}

/// A stream message's content.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A depth diff, for the book sync; `time` is its event time (ns) if it has one.
    Diff { time: Option<i64>, diff: Diff },
    /// A trade or a quote, at its venue time (ns) if it has one.
    Event { time: Option<i64>, body: Body },
}

impl<'a> Head<'a> {
    /// Reads the head of a stream message (wrapped in `{"stream":..,"data":..}` or not).
    pub fn parse(v: &'a Value) -> Result<Head<'a>, String> {
        let data = v.get("data").unwrap_or(v);
        let symbol = data
            .get("s")
            .and_then(Value::as_str)
            .ok_or("message without a symbol `s`")?;
        let kind = data.get("e").and_then(Value::as_str);
        let futures = data.get("pu").is_some() || kind == Some("bookTicker");
        Ok(Head {
            data,
            symbol,
            kind,
            futures,
        })
    }

    /// Reads the fields, each checked so that what is stored is what replay can pack.
    pub fn payload(&self) -> Result<Payload, String> {
        let data = self.data;
        let event_ms = ms_of(data, "E")?;
        match self.kind {
            Some("depthUpdate") => {
                let diff = Diff {
                    first: u64_of(data, "U")?,
                    last: u64_of(data, "u")?,
                    prev: data.get("pu").and_then(Value::as_u64),
                    bids: levels(&data["b"])?,
                    asks: levels(&data["a"])?,
                };
                book_fits(&diff.bids, &diff.asks)?;
                Ok(Payload::Diff {
                    time: event_ms,
                    diff,
                })
            }
            Some("trade") => {
                let maker_is_buyer = data.get("m").and_then(Value::as_bool);
                let body = Body::Trade {
                    price: dec_of(data, "p")?,
                    qty: dec_of(data, "q")?,
                    trade_id: u64_of(data, "t")?,
                    aggressor: maker_is_buyer
                        .map(|m| if m { SideName::Sell } else { SideName::Buy }),
                };
                let time = ms_of(data, "T")?.or(event_ms);
                Ok(Payload::Event { time, body })
            }
            None | Some("bookTicker") if data.get("b").is_some_and(Value::is_string) => {
                let (bid_px, ask_px) = (dec_of(data, "b")?, dec_of(data, "a")?);
                let (bid_qty, ask_qty) = (dec_of(data, "B")?, dec_of(data, "A")?);
                one_scale("price", [&bid_px, &ask_px].into_iter())?;
                one_scale("quantity", [&bid_qty, &ask_qty].into_iter())?;
                let body = Body::Quote {
                    bid_px,
                    bid_qty,
                    ask_px,
                    ask_qty,
                    update_id: data.get("u").and_then(Value::as_u64),
                };
                Ok(Payload::Event {
                    time: event_ms,
                    body,
                })
            }
            other => Err(format!("unsupported message type {other:?}")),
        }
    }
}

impl Diff {
    /// The `book_delta` event body of an applied diff.
    pub fn into_body(self) -> Body {
        Body::BookDelta {
            first_update_id: self.first,
            final_update_id: self.last,
            prev_final_update_id: self.prev.unwrap_or(0),
            bids: self.bids,
            asks: self.asks,
        }
    }
}

/// A `book_gap` event body: the book is unknown from here until the next snapshot; `data`
/// says why.
pub fn book_gap(data: Value) -> Body {
    Body::Custom {
        type_name: "book_gap".into(),
        data,
    }
}

/// The `book_gap` event body of a break in the update-id chain.
pub fn gap_body(expected: u64, got: u64) -> Body {
    book_gap(serde_json::json!({ "expected": expected, "got": got }))
}
