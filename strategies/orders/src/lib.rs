//! Orders projector: the order state machine from lifecycle events.
//!
//! `submitted -> acked -> partially_filled -> filled`, or `-> cancelled` / `-> rejected`
//! from any open state. An event that does not fit the order's state (a fill for an unknown
//! order, an ack after a cancel, ...) is not dropped: it is counted and listed in
//! `anomalies` with its seq.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Event, Payload, Projector, ProjectorCtx};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Submitted,
    Acked,
    PartiallyFilled,
    Filled,
    Cancelled,
    Rejected,
}

impl Status {
    fn is_open(self) -> bool {
        matches!(
            self,
            Status::Submitted | Status::Acked | Status::PartiallyFilled
        )
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Order {
    /// The instrument's symbol (its id where the host named none).
    pub instrument: String,
    pub side: String,
    pub order_type: String,
    pub price: f64,
    pub qty: f64,
    pub filled_qty: f64,
    pub status: Status,
    pub venue_order_id: Option<u64>,
    pub reject_reason: Option<String>,
    pub last_seq: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Anomaly {
    pub seq: u64,
    pub client_order_id: u64,
    pub message: String,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Orders {
    /// Keyed by client order id.
    pub orders: BTreeMap<u64, Order>,
    pub open: u64,
    pub anomalies: Vec<Anomaly>,
}

impl Orders {
    fn anomaly(&mut self, ev: &Event<'_>, id: u64, message: String) {
        self.anomalies.push(Anomaly {
            seq: ev.header.seq,
            client_order_id: id,
            message,
        });
    }

    /// Moves an open order to `to`; anything else is an anomaly.
    fn transition(
        &mut self,
        ev: &Event<'_>,
        id: u64,
        to: Status,
        what: &str,
    ) -> Option<&mut Order> {
        let from = match self.orders.get(&id) {
            None => {
                self.anomaly(ev, id, format!("{what} for unknown order"));
                return None;
            }
            Some(o) => o.status,
        };
        if !from.is_open() || (to == Status::Acked && from != Status::Submitted) {
            self.anomaly(ev, id, format!("{what} for an order that is {from:?}"));
            return None;
        }
        if from.is_open() && !to.is_open() {
            self.open -= 1;
        }
        let o = self.orders.get_mut(&id).expect("checked above");
        o.status = to;
        o.last_seq = ev.header.seq;
        Some(o)
    }
}

impl Projector for Orders {
    type Config = ();

    fn new(_: ()) -> Result<Self, String> {
        Ok(Orders::default())
    }

    fn on_event(&mut self, ev: &Event<'_>, ctx: &mut ProjectorCtx<'_>) {
        match ev.payload {
            Payload::OrderSubmitted(s) => {
                if self.orders.contains_key(&s.client_order_id) {
                    return self.anomaly(ev, s.client_order_id, "duplicate submit".into());
                }
                self.open += 1;
                self.orders.insert(
                    s.client_order_id,
                    Order {
                        instrument: ctx.name(ev.header.instrument),
                        side: format!("{:?}", s.side).to_lowercase(),
                        order_type: format!("{:?}", s.order_type).to_lowercase(),
                        price: ev.px(s.price),
                        qty: ev.qty(s.qty),
                        filled_qty: 0.0,
                        status: Status::Submitted,
                        venue_order_id: None,
                        reject_reason: None,
                        last_seq: ev.header.seq,
                    },
                );
            }
            Payload::OrderAcked(a) => {
                if let Some(o) = self.transition(ev, a.client_order_id, Status::Acked, "ack") {
                    o.venue_order_id = Some(a.venue_order_id);
                }
            }
            Payload::OrderRejected(r) => {
                if let Some(o) = self.transition(ev, r.client_order_id, Status::Rejected, "reject")
                {
                    o.reject_reason = Some(r.reason.to_string());
                }
            }
            Payload::OrderCancelled(c) => {
                self.transition(ev, c.client_order_id, Status::Cancelled, "cancel");
            }
            Payload::Fill(f) => {
                let qty = ev.qty(f.qty);
                let total = self
                    .orders
                    .get(&f.client_order_id)
                    .map(|o| o.filled_qty + qty);
                let done = f.is_final
                    || total
                        .zip(self.orders.get(&f.client_order_id))
                        .is_some_and(|(t, o)| t >= o.qty);
                let to = if done {
                    Status::Filled
                } else {
                    Status::PartiallyFilled
                };
                if let Some(o) = self.transition(ev, f.client_order_id, to, "fill") {
                    o.filled_qty += qty;
                }
            }
            _ => {}
        }
    }
}

tapedeck_guest::export_projector!(Orders);
