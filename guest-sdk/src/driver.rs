//! Runs a guest type over packed batches. The Wasm export glue wraps exactly these drivers,
//! and the host uses them to run the same guest source natively, so native and Wasm runs
//! execute the same code path from batch bytes to output bytes.

use crate::codec::{EventBatch, OutputBatchWriter};
use crate::{Ctx, Event, Instruments, Projector, ProjectorCtx, Strategy, state};

/// Feeds every event of `batch` to `on_event`; returns the packed outputs in `out`.
///
/// A batch the codec rejects is a host bug, not guest input: it panics (a trap in Wasm).
#[inline(always)]
fn run_batch<G>(
    guest: &mut G,
    batch: &[u8],
    out: &mut Vec<u8>,
    on_event: impl Fn(&mut G, &Event<'_>, &mut OutputBatchWriter),
) {
    let events = EventBatch::new(batch)
        .unwrap_or_else(|e| panic!("tapedeck-guest: invalid batch from host: {e}"));
    let mut writer = OutputBatchWriter::new(std::mem::take(out));
    events
        .for_each_event(|ev| on_event(guest, ev, &mut writer))
        .unwrap_or_else(|e| panic!("tapedeck-guest: invalid event from host: {e}"));
    *out = writer.finish();
}

/// A strategy plus its reusable output buffer.
pub struct StrategyDriver<S> {
    guest: S,
    out: Vec<u8>,
    instruments: Instruments,
}

impl<S: Strategy> StrategyDriver<S> {
    /// `config` is JSON; empty means `S::Config::default()`.
    pub fn init(config: &str) -> Result<Self, String> {
        Ok(Self::wrap(S::new(state::parse_config(config)?)?))
    }

    pub fn restore(bytes: &[u8]) -> Result<Self, String> {
        Ok(Self::wrap(S::restore(bytes)?))
    }

    fn wrap(guest: S) -> Self {
        Self {
            guest,
            out: Vec::with_capacity(4096),
            instruments: Instruments::default(),
        }
    }

    /// The stream's instrument table, which [`Ctx::symbol`] reads (the host sends it after
    /// `init` and `restore`).
    pub fn set_instruments(&mut self, instruments: Instruments) {
        self.instruments = instruments;
    }

    pub fn on_events(&mut self, batch: &[u8]) -> &[u8] {
        let instruments = &self.instruments;
        run_batch(&mut self.guest, batch, &mut self.out, |g, ev, w| {
            g.on_event(ev, &mut Ctx::new(w, instruments, ev.header.seq));
        });
        &self.out
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.guest.snapshot()
    }

    pub fn guest(&self) -> &S {
        &self.guest
    }
}

/// A projector plus its reusable output buffer.
pub struct ProjectorDriver<P> {
    guest: P,
    out: Vec<u8>,
    instruments: Instruments,
}

impl<P: Projector> ProjectorDriver<P> {
    pub fn init(config: &str) -> Result<Self, String> {
        Ok(Self::wrap(P::new(state::parse_config(config)?)?))
    }

    pub fn restore(bytes: &[u8]) -> Result<Self, String> {
        Ok(Self::wrap(P::restore(bytes)?))
    }

    fn wrap(guest: P) -> Self {
        Self {
            guest,
            out: Vec::with_capacity(1024),
            instruments: Instruments::default(),
        }
    }

    /// The stream's instrument table, which [`ProjectorCtx::symbol`] reads (the host sends it
    /// after `init` and `restore`).
    pub fn set_instruments(&mut self, instruments: Instruments) {
        self.instruments = instruments;
    }

    pub fn on_events(&mut self, batch: &[u8]) -> &[u8] {
        // A projector emits nothing: its output batch is always empty (the ABI keeps the
        // batch, and the host keeps no projector output).
        let instruments = &self.instruments;
        run_batch(&mut self.guest, batch, &mut self.out, |g, ev, _| {
            g.on_event(ev, &mut ProjectorCtx::new(instruments, ev.header.seq));
        });
        &self.out
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.guest.snapshot()
    }

    /// Canonical JSON: keys sorted, floats printed the shortest round-trip way.
    pub fn state(&self) -> Vec<u8> {
        state::canonical_json(&self.guest.state())
    }

    pub fn guest(&self) -> &P {
        &self.guest
    }
}
