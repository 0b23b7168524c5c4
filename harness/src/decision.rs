//! Decisions: what a strategy emitted, as owned typed values, built once from the guest
//! codec's output records and handed between the core stages (replay, venue, regression,
//! reports) as such.
//!
//! Invariants:
//! - Prices and quantities stay exact [`Dec`]s (mantissa and scale as the guest wrote them).
//! - JSON exists only at the edges (decision logs, reports): [`Output::to_json_named`] is the
//!   one place that writes it (instruments by symbol from the stream's table; by id in
//!   [`Output::to_json`], which has no table). Its text is fixed: an object with an `output` tag and keys in
//!   alphabetical order, prices and quantities as decimal strings, enum names lowercase with
//!   no separator (`"postonly"`). `Serialize` writes the same. The tests below pin it byte for
//!   byte.
//! - Two outputs are equal when their JSON would be: metric values compare as numbers, and
//!   values JSON cannot hold (NaN, infinities) are all alike.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use tapedeck_guest::Instruments;
use tapedeck_guest::codec::{self, LogLevel};

use crate::event::{Dec, OrderTypeName, SideName, TifName};

/// One output of one strategy, with its cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The seq of the event that caused it.
    pub seq: u64,
    /// That event's time.
    pub time_ns: i64,
    pub output: Output,
}

/// What a strategy emits.
#[derive(Debug, Clone)]
pub enum Output {
    NewOrder {
        /// The guest's instrument id ([`crate::event::instrument_id`] of the symbol).
        instrument: u32,
        client_order_id: u64,
        side: SideName,
        order_type: OrderTypeName,
        tif: TifName,
        /// Limit price (zero for market orders).
        price: Dec,
        qty: Dec,
    },
    Cancel {
        instrument: u32,
        client_order_id: u64,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    Metric {
        name: String,
        value: f64,
    },
}

impl From<&codec::Output<'_>> for Output {
    fn from(o: &codec::Output<'_>) -> Self {
        match *o {
            codec::Output::NewOrder(n) => Output::NewOrder {
                instrument: n.instrument,
                client_order_id: n.client_order_id,
                side: match n.side {
                    codec::Side::Buy => SideName::Buy,
                    codec::Side::Sell => SideName::Sell,
                },
                order_type: match n.order_type {
                    codec::OrderType::Limit => OrderTypeName::Limit,
                    codec::OrderType::Market => OrderTypeName::Market,
                },
                tif: match n.tif {
                    codec::TimeInForce::Gtc => TifName::Gtc,
                    codec::TimeInForce::Ioc => TifName::Ioc,
                    codec::TimeInForce::Fok => TifName::Fok,
                    codec::TimeInForce::PostOnly => TifName::PostOnly,
                },
                price: Dec::new(n.price, n.px_scale),
                qty: Dec::new(n.qty, n.qty_scale),
            },
            codec::Output::Cancel {
                instrument,
                client_order_id,
            } => Output::Cancel {
                instrument,
                client_order_id,
            },
            codec::Output::Log { level, message } => Output::Log {
                level,
                message: message.to_string(),
            },
            codec::Output::Metric { name, value } => Output::Metric {
                name: name.to_string(),
                value,
            },
        }
    }
}

/// Appends the decisions of one guest call's outputs `out` (validated by the runtime) to
/// `into`: each with its cause seq and that event's time, from `times` (the batch's event
/// times, the first at `first_seq`).
pub fn decode_outputs(out: &[u8], first_seq: u64, times: &[i64], into: &mut Vec<Decision>) {
    let records = codec::OutputBatch::new(out).expect("validated by the runtime");
    for r in records.flatten() {
        let idx = r.cause_seq.saturating_sub(first_seq) as usize;
        into.push(Decision {
            seq: r.cause_seq,
            time_ns: times.get(idx).copied().unwrap_or(0),
            output: (&r.output).into(),
        });
    }
}

impl PartialEq for Output {
    fn eq(&self, other: &Self) -> bool {
        use Output::*;
        match (self, other) {
            (
                NewOrder {
                    instrument: i1,
                    client_order_id: c1,
                    side: s1,
                    order_type: o1,
                    tif: t1,
                    price: p1,
                    qty: q1,
                },
                NewOrder {
                    instrument: i2,
                    client_order_id: c2,
                    side: s2,
                    order_type: o2,
                    tif: t2,
                    price: p2,
                    qty: q2,
                },
            ) => (i1, c1, s1, o1, t1, p1, q1) == (i2, c2, s2, o2, t2, p2, q2),
            (
                Cancel {
                    instrument: i1,
                    client_order_id: c1,
                },
                Cancel {
                    instrument: i2,
                    client_order_id: c2,
                },
            ) => (i1, c1) == (i2, c2),
            (
                Log {
                    level: l1,
                    message: m1,
                },
                Log {
                    level: l2,
                    message: m2,
                },
            ) => (l1, m1) == (l2, m2),
            (
                Metric {
                    name: n1,
                    value: v1,
                },
                Metric {
                    name: n2,
                    value: v2,
                },
            ) => n1 == n2 && (v1 == v2 || !v1.is_finite() && !v2.is_finite()),
            _ => false,
        }
    }
}

impl Output {
    /// The `output` tag: `new_order`, `cancel`, `log` or `metric`.
    pub fn kind(&self) -> &'static str {
        match self {
            Output::NewOrder { .. } => "new_order",
            Output::Cancel { .. } => "cancel",
            Output::Log { .. } => "log",
            Output::Metric { .. } => "metric",
        }
    }

    /// The JSON written to decision logs and reports (see the module doc for its rules), with
    /// instruments as their ids.
    pub fn to_json(&self) -> Value {
        self.to_json_named(&Instruments::default())
    }

    /// [`Output::to_json`] with each instrument named by its symbol from `instruments` (its id
    /// where the table has none): what reports a person reads write.
    pub fn to_json_named(&self, instruments: &Instruments) -> Value {
        let name = |id: &u32| match instruments.symbol(*id) {
            Some(s) => Value::from(s),
            None => Value::from(*id),
        };
        // `json!` builds serde_json's default (sorted) map: keys come out alphabetically.
        match self {
            Output::NewOrder {
                instrument,
                client_order_id,
                side,
                order_type,
                tif,
                price,
                qty,
            } => json!({
                "output": self.kind(),
                "instrument": name(instrument),
                "client_order_id": client_order_id,
                "side": side_name(*side),
                "order_type": order_type_name(*order_type),
                "tif": tif_name(*tif),
                "price": price.to_string(),
                "qty": qty.to_string(),
            }),
            Output::Cancel {
                instrument,
                client_order_id,
            } => json!({
                "output": self.kind(),
                "instrument": name(instrument),
                "client_order_id": client_order_id,
            }),
            Output::Log { level, message } => json!({
                "output": self.kind(),
                "level": level_name(*level),
                "message": message,
            }),
            Output::Metric { name, value } => json!({
                "output": self.kind(),
                "name": name,
                "value": value,
            }),
        }
    }
}

/// Serializes as [`Output::to_json`].
impl Serialize for Output {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// The names decision logs use (they predate the event store's snake_case ones: `postonly`).
pub fn side_name(s: SideName) -> &'static str {
    match s {
        SideName::Buy => "buy",
        SideName::Sell => "sell",
    }
}

pub fn order_type_name(o: OrderTypeName) -> &'static str {
    match o {
        OrderTypeName::Limit => "limit",
        OrderTypeName::Market => "market",
    }
}

pub fn tif_name(t: TifName) -> &'static str {
    match t {
        TifName::Gtc => "gtc",
        TifName::Ioc => "ioc",
        TifName::Fok => "fok",
        TifName::PostOnly => "postonly",
    }
}

pub fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_guest::codec::{NewOrder, OrderType, Side, TimeInForce};

    fn order(tif: TimeInForce) -> codec::Output<'static> {
        codec::Output::NewOrder(NewOrder {
            instrument: 7,
            client_order_id: 42,
            side: Side::Sell,
            order_type: OrderType::Limit,
            tif,
            price: 6543210,
            qty: -5,
            px_scale: 2,
            qty_scale: 3,
        })
    }

    #[test]
    fn the_json_of_every_output_kind_is_pinned() {
        let text = |o: &codec::Output<'_>| Output::from(o).to_json().to_string();
        assert_eq!(
            text(&order(TimeInForce::PostOnly)),
            r#"{"client_order_id":42,"instrument":7,"order_type":"limit","output":"new_order","price":"65432.10","qty":"-0.005","side":"sell","tif":"postonly"}"#
        );
        let market = codec::Output::NewOrder(NewOrder {
            side: Side::Buy,
            order_type: OrderType::Market,
            tif: TimeInForce::Ioc,
            price: 0,
            qty: 1,
            px_scale: 0,
            qty_scale: 0,
            ..match order(TimeInForce::Gtc) {
                codec::Output::NewOrder(n) => n,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            text(&market),
            r#"{"client_order_id":42,"instrument":7,"order_type":"market","output":"new_order","price":"0","qty":"1","side":"buy","tif":"ioc"}"#
        );
        assert_eq!(
            text(&codec::Output::Cancel {
                instrument: 7,
                client_order_id: 42
            }),
            r#"{"client_order_id":42,"instrument":7,"output":"cancel"}"#
        );
        assert_eq!(
            text(&codec::Output::Log {
                level: LogLevel::Warn,
                message: "a \"quoted\" note"
            }),
            r#"{"level":"warn","message":"a \"quoted\" note","output":"log"}"#
        );
        assert_eq!(
            text(&codec::Output::Metric {
                name: "ema_fast",
                value: 1.5
            }),
            r#"{"name":"ema_fast","output":"metric","value":1.5}"#
        );
        assert_eq!(
            text(&codec::Output::Metric {
                name: "nan",
                value: f64::NAN
            }),
            r#"{"name":"nan","output":"metric","value":null}"#
        );
    }

    #[test]
    fn a_decision_serializes_with_its_output_as_written_to_logs() {
        let d = Decision {
            seq: 3,
            time_ns: 4,
            output: Output::Cancel {
                instrument: 1,
                client_order_id: 2,
            },
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"seq":3,"time_ns":4,"output":{"client_order_id":2,"instrument":1,"output":"cancel"}}"#
        );
    }

    #[test]
    fn enum_names_match_what_decision_logs_always_wrote() {
        // The logs were written with `format!("{:?}").to_lowercase()` of the codec's enums.
        let old = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
        for t in TimeInForce::ALL {
            let Output::NewOrder { tif, .. } = Output::from(&order(*t)) else {
                unreachable!()
            };
            assert_eq!(tif_name(tif), old(t));
        }
        for l in LogLevel::ALL {
            assert_eq!(level_name(*l), old(l));
        }
        for (s, name) in [(Side::Buy, SideName::Buy), (Side::Sell, SideName::Sell)] {
            assert_eq!(side_name(name), old(&s));
        }
        for (o, name) in [
            (OrderType::Limit, OrderTypeName::Limit),
            (OrderType::Market, OrderTypeName::Market),
        ] {
            assert_eq!(order_type_name(name), old(&o));
        }
    }

    #[test]
    fn outputs_are_equal_when_their_json_is() {
        let m = |value: f64| Output::Metric {
            name: "m".into(),
            value,
        };
        for (a, b) in [
            (1.0, 1.0),
            (0.0, -0.0),
            (1.0, 2.0),
            (f64::NAN, f64::NAN),
            (f64::NAN, f64::INFINITY),
            (f64::NAN, 1.0),
        ] {
            assert_eq!(m(a) == m(b), m(a).to_json() == m(b).to_json(), "{a} {b}");
        }
        let a = Output::from(&order(TimeInForce::Gtc));
        let b = Output::from(&order(TimeInForce::Fok));
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
        assert_ne!(
            a,
            Output::Cancel {
                instrument: 7,
                client_order_id: 42
            }
        );
    }
}
