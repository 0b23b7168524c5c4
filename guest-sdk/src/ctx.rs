//! The contexts handed to `on_event`. A strategy's [`Ctx`] emits outputs (orders, cancels,
//! logs, metrics), each tagged with the seq of the event being handled. A projector's
//! [`ProjectorCtx`] emits nothing: the host keeps no projector output (a projector's result
//! is its `state()`), so placing an order, logging or a metric from a projector is a compile
//! error rather than an output silently dropped.

use crate::Instruments;
use crate::codec::{
    Event, LogLevel, NewOrder, OrderType, Output, OutputBatchWriter, Side, TimeInForce, pow10,
};

/// Handed to `on_event`; every output it records carries the seq of the event being handled.
///
/// Client order ids are derived from that seq (`seq << 8 | n` for the n-th order of the
/// event), so they are deterministic and unique within a stream without any guest state.
pub struct Ctx<'w> {
    out: &'w mut OutputBatchWriter,
    instruments: &'w Instruments,
    cause_seq: u64,
    orders: u64,
}

impl<'w> Ctx<'w> {
    pub(crate) fn new(
        out: &'w mut OutputBatchWriter,
        instruments: &'w Instruments,
        cause_seq: u64,
    ) -> Self {
        Self {
            out,
            instruments,
            cause_seq,
            orders: 0,
        }
    }

    /// The seq of the event being handled.
    pub fn cause_seq(&self) -> u64 {
        self.cause_seq
    }

    /// The symbol of instrument `id` (an event's `header.instrument`), from the stream's
    /// instrument table.
    pub fn symbol(&self, id: u32) -> Option<&'w str> {
        self.instruments.symbol(id)
    }

    /// The symbol of `id`, or the id in decimal when the table has none: a name for what a
    /// person reads.
    pub fn name(&self, id: u32) -> String {
        self.instruments.name(id)
    }

    /// The stream's instrument table.
    pub fn instruments(&self) -> &'w Instruments {
        self.instruments
    }

    /// Emits an order exactly as given (mantissas at its scales); returns its client order id.
    pub fn order(&mut self, mut order: NewOrder) -> u64 {
        order.client_order_id = (self.cause_seq << 8) | (self.orders & 0xff);
        self.orders += 1;
        self.out.push(self.cause_seq, &Output::NewOrder(order));
        order.client_order_id
    }

    /// A market order for `qty` (converted at the event's quantity scale, rounded).
    pub fn market(&mut self, event: &Event<'_>, side: Side, qty: f64) -> u64 {
        let h = &event.header;
        self.order(NewOrder {
            instrument: h.instrument,
            client_order_id: 0,
            side,
            order_type: OrderType::Market,
            tif: TimeInForce::Ioc,
            price: 0,
            qty: to_mantissa(qty, h.qty_scale),
            px_scale: h.px_scale,
            qty_scale: h.qty_scale,
        })
    }

    /// A good-till-cancelled limit order (price and quantity at the event's scales, rounded).
    pub fn limit(&mut self, event: &Event<'_>, side: Side, price: f64, qty: f64) -> u64 {
        let h = &event.header;
        self.order(NewOrder {
            instrument: h.instrument,
            client_order_id: 0,
            side,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            price: to_mantissa(price, h.px_scale),
            qty: to_mantissa(qty, h.qty_scale),
            px_scale: h.px_scale,
            qty_scale: h.qty_scale,
        })
    }

    pub fn cancel(&mut self, instrument: u32, client_order_id: u64) {
        self.out.push(
            self.cause_seq,
            &Output::Cancel {
                instrument,
                client_order_id,
            },
        );
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.out
            .push(self.cause_seq, &Output::Log { level, message });
    }

    pub fn metric(&mut self, name: &str, value: f64) {
        self.out
            .push(self.cause_seq, &Output::Metric { name, value });
    }
}

/// Handed to a projector's `on_event`. It has no way to emit anything: what a projector
/// computes goes in its state. Calling an order method on it (`market`, `limit`, `order`,
/// `cancel`) fails to compile with "projectors cannot place orders".
pub struct ProjectorCtx<'w> {
    cause_seq: u64,
    instruments: &'w Instruments,
}

impl<'w> ProjectorCtx<'w> {
    pub(crate) fn new(instruments: &'w Instruments, cause_seq: u64) -> Self {
        Self {
            cause_seq,
            instruments,
        }
    }

    /// The seq of the event being handled.
    pub fn cause_seq(&self) -> u64 {
        self.cause_seq
    }

    /// The symbol of instrument `id` (an event's `header.instrument`), from the stream's
    /// instrument table.
    pub fn symbol(&self, id: u32) -> Option<&'w str> {
        self.instruments.symbol(id)
    }

    /// The symbol of `id`, or the id in decimal when the table has none: a key for state a
    /// person reads.
    pub fn name(&self, id: u32) -> String {
        self.instruments.name(id)
    }

    /// The stream's instrument table.
    pub fn instruments(&self) -> &'w Instruments {
        self.instruments
    }
}

// The order methods a projector might reach for, present only to fail with a message that
// says why: their argument types never implement the sealed `StrategiesOnly`, so no call
// compiles (and none can run). Hidden from the docs.
impl ProjectorCtx<'_> {
    #[doc(hidden)]
    pub fn order<O: sealed::StrategiesOnly>(&mut self, order: O) -> u64 {
        order.unreachable()
    }

    #[doc(hidden)]
    pub fn market<E: sealed::StrategiesOnly>(&mut self, event: E, _: Side, _: f64) -> u64 {
        event.unreachable()
    }

    #[doc(hidden)]
    pub fn limit<E: sealed::StrategiesOnly>(&mut self, event: E, _: Side, _: f64, _: f64) -> u64 {
        event.unreachable()
    }

    #[doc(hidden)]
    pub fn cancel<I: sealed::StrategiesOnly>(&mut self, instrument: I, _: u64) {
        instrument.unreachable();
    }
}

mod sealed {
    /// Implemented by no type, and not nameable outside this crate, so nothing can be.
    #[diagnostic::on_unimplemented(
        message = "projectors cannot place orders",
        label = "a projector only rebuilds state; orders come from a `Strategy`",
        note = "the host keeps none of a projector's outputs: put what it computes in its state, and place orders from a type that implements `tapedeck_guest::Strategy`, exported with `export_strategy!`"
    )]
    pub trait StrategiesOnly {
        fn unreachable(&self) -> !;
    }
}

/// `value * 10^scale`, rounded half away from zero.
pub fn to_mantissa(value: f64, scale: u8) -> i64 {
    (value * pow10(scale)).round() as i64
}
