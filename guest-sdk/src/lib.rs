//! The Tapedeck guest SDK: what a strategy or projector module is written against.
//!
//! A guest is a plain Rust type with one trait impl and one macro:
//!
//! ```ignore
//! use tapedeck_guest::{Ctx, Event, Payload, Strategy};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub struct Mine { /* state */ }
//!
//! impl Strategy for Mine {
//!     type Config = ();
//!     fn new(_: ()) -> Result<Self, String> { Ok(Mine {}) }
//!     fn on_event(&mut self, ev: &Event<'_>, ctx: &mut Ctx<'_>) { /* ... */ }
//! }
//!
//! tapedeck_guest::export_strategy!(Mine);
//! ```
//!
//! A projector is written the same way; its context, a [`ProjectorCtx`], has no order, log
//! or metric methods (the host keeps nothing a projector emits: its result is its state), so
//! `ctx.market(..)` in a projector does not compile:
//!
//! ```ignore
//! use tapedeck_guest::{Event, Payload, Projector, ProjectorCtx};
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! pub struct Fills { count: u64 }
//!
//! impl Projector for Fills {
//!     type Config = ();
//!     fn new(_: ()) -> Result<Self, String> { Ok(Fills::default()) }
//!     fn on_event(&mut self, ev: &Event<'_>, _ctx: &mut ProjectorCtx<'_>) {
//!         if let Payload::Fill(_) = ev.payload { self.count += 1 }
//!     }
//! }
//!
//! tapedeck_guest::export_projector!(Fills);
//! ```
//!
//! The crate also holds the batch [`codec`], compiled into the host as well, and a
//! [`driver`] that runs the same guest code natively (tests and benches compare the
//! two). On `wasm32` the export macros generate the component glue with `wit-bindgen`; a
//! guest crate enables the `strategy` or `projector` feature of this crate to say which world
//! it exports.

extern crate self as tapedeck_guest;

pub mod codec;
mod ctx;
pub mod driver;
#[doc(hidden)]
pub mod glue;
mod instruments;
mod per_instrument;
pub mod state;

pub use codec::{
    Aggressor, Decimal, Event, EventHeader, EventKind, Level, Levels, Liquidity, LogLevel,
    OrderType, Payload, Side, TimeInForce,
};
pub use ctx::{Ctx, ProjectorCtx};
pub use instruments::Instruments;
pub use per_instrument::PerInstrument;

/// Version of the host/guest contract: the WIT worlds plus the codec layouts. Every guest
/// exports the version it was built with; the host refuses any other.
///
/// v2: the host hands guests the stream's instrument table (`set-instruments`).
pub const ABI_VERSION: u32 = 2;

/// A trading strategy: reacts to events by emitting order intents, logs and metrics.
///
/// State is the type itself; `snapshot`/`restore` default to its serde JSON form, so a
/// restored instance continues exactly where the snapshot was taken.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Tapedeck strategy",
    label = "export_strategy! needs a type that implements `tapedeck_guest::Strategy`",
    note = "add `impl tapedeck_guest::Strategy for {Self} {{ type Config = ..; fn new(..); fn on_event(..) }}`, and derive serde's Serialize and Deserialize for it"
)]
pub trait Strategy: serde::Serialize + serde::de::DeserializeOwned + 'static {
    /// Parsed from the JSON given to `init`; an empty config means `Default`.
    type Config: serde::de::DeserializeOwned + Default;

    fn new(config: Self::Config) -> Result<Self, String>;

    /// One event, in seq order within its stream. Outputs go through `ctx`, which tags each
    /// with this event's seq.
    fn on_event(&mut self, event: &Event<'_>, ctx: &mut Ctx<'_>);

    fn snapshot(&self) -> Vec<u8> {
        state::to_bytes(self)
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        state::from_bytes(bytes)
    }
}

/// A projector: rebuilds state from events; its `state()` is what gets diffed and
/// snapshot-tested. It emits nothing: its context, [`ProjectorCtx`], has no order, log or
/// metric methods (orders come from a [`Strategy`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Tapedeck projector",
    label = "export_projector! needs a type that implements `tapedeck_guest::Projector`",
    note = "add `impl tapedeck_guest::Projector for {Self} {{ type Config = ..; fn new(..); fn on_event(..) }}`, and derive serde's Serialize and Deserialize for it"
)]
pub trait Projector: serde::Serialize + serde::de::DeserializeOwned + 'static {
    type Config: serde::de::DeserializeOwned + Default;

    fn new(config: Self::Config) -> Result<Self, String>;

    /// One event, in seq order within its stream.
    fn on_event(&mut self, event: &Event<'_>, ctx: &mut ProjectorCtx<'_>);

    /// The projected state as a JSON value; serialized canonically (sorted keys) by the SDK.
    /// Defaults to the type's own serde form.
    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("projector state serializes to JSON")
    }

    fn snapshot(&self) -> Vec<u8> {
        state::to_bytes(self)
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        state::from_bytes(bytes)
    }
}

/// Exports a [`Strategy`] type as this module's `strategy` world.
///
/// Needs the `strategy` feature of `tapedeck-guest`. Natively it only checks the type, so the
/// same crate also builds as an ordinary library.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty) => {
        $crate::export_strategy!($ty, abi_version = $crate::ABI_VERSION);
    };
    ($ty:ty, abi_version = $abi:expr) => {
        const _: fn() = || $crate::glue::assert_strategy::<$ty>();
        $crate::__export_strategy_wasm!($ty, $abi);
    };
}

/// Exports a [`Projector`] type as this module's `projector` world.
///
/// Needs the `projector` feature of `tapedeck-guest`.
#[macro_export]
macro_rules! export_projector {
    ($ty:ty) => {
        const _: fn() = || $crate::glue::assert_projector::<$ty>();
        $crate::__export_projector_wasm!($ty);
    };
}
