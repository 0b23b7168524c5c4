//! One live guest: its own `Store`, memory cap and fuel budget. A trap poisons the instance
//! (and only it) and comes back as a typed error with the module hash and the batch's seqs.

use tapedeck_guest::codec::EventBatch;
use wasmtime::{ResourceLimiter, Store, Trap};

use super::bindings::{projector, strategy};
use super::{Module, ModuleHash, ModuleInfo, ModuleKind, Pre, RuntimeConfig};
use crate::error::{Error, Result, TrapKind};

/// Per-store host state: the memory cap, and what the last refused growth asked for.
pub struct StoreState {
    memory_limit: usize,
    refused_growth: Option<usize>,
}

impl StoreState {
    pub(super) fn new(memory_limit: usize) -> Self {
        StoreState {
            memory_limit,
            refused_growth: None,
        }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.refused_growth = Some(desired);
            // An error (not `Ok(false)`) traps right here, so the trap is named for what it is
            // instead of surfacing later as the guest's allocation-failure abort.
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_limit);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

enum Bound {
    Strategy(strategy::Strategy),
    Projector(projector::Projector),
}

/// A guest instance. Not `Sync`: one thread drives it at a time.
pub struct Instance {
    store: Store<StoreState>,
    bound: Bound,
    module: ModuleHash,
    fuel_per_event: u64,
    fuel_per_call: u64,
    metered: bool,
    poisoned: Option<TrapKind>,
}

/// Calls a function on whichever world is bound, with the same arguments.
macro_rules! call {
    ($self:ident, $method:ident $(, $arg:expr)*) => {
        match &$self.bound {
            Bound::Strategy(b) => b.$method(&mut $self.store $(, $arg)*),
            Bound::Projector(b) => b.$method(&mut $self.store $(, $arg)*),
        }
    };
}

impl Instance {
    pub(super) fn new(
        mut store: Store<StoreState>,
        module: &Module,
        config: &RuntimeConfig,
    ) -> Result<Self> {
        let m = &module.inner;
        // Guests may run code while they instantiate (CPython, SpiderMonkey): with fuel
        // metered, a store without fuel would trap there.
        if config.fuel {
            store
                .set_fuel(m.budget.fuel_per_call)
                .map_err(|e| Error::engine("setting fuel", e))?;
        }
        let bound = match &m.pre {
            Pre::Strategy(p) => p.instantiate(&mut store).map(Bound::Strategy),
            Pre::Projector(p) => p.instantiate(&mut store).map(Bound::Projector),
        }
        .map_err(|e| Error::engine(format!("instantiating module {}", m.hash), e))?;
        Ok(Instance {
            store,
            bound,
            module: m.hash,
            fuel_per_event: m.budget.fuel_per_event,
            fuel_per_call: m.budget.fuel_per_call,
            metered: config.fuel,
            poisoned: None,
        })
    }

    pub fn module(&self) -> ModuleHash {
        self.module
    }

    pub fn kind(&self) -> ModuleKind {
        match self.bound {
            Bound::Strategy(_) => ModuleKind::Strategy,
            Bound::Projector(_) => ModuleKind::Projector,
        }
    }

    /// The trap that poisoned this instance, if any.
    pub fn trapped(&self) -> Option<&TrapKind> {
        self.poisoned.as_ref()
    }

    pub fn metadata(&mut self) -> Result<ModuleInfo> {
        self.guarded(self.fuel_per_call, None, |s| match &s.bound {
            Bound::Strategy(b) => b.call_metadata(&mut s.store).map(|i| ModuleInfo {
                name: i.name,
                version: i.version,
                abi_version: i.abi_version,
            }),
            Bound::Projector(b) => b.call_metadata(&mut s.store).map(|i| ModuleInfo {
                name: i.name,
                version: i.version,
                abi_version: i.abi_version,
            }),
        })
    }

    /// Hands the module its config (JSON; "" for defaults).
    pub fn init(&mut self, config: &str) -> Result<()> {
        let module = self.module;
        self.guarded(self.fuel_per_call, None, |s| call!(s, call_init, config))?
            .map_err(|message| Error::GuestInit { module, message })
    }

    /// Hands the module its stream's instrument table (after `init` or `restore`, before any
    /// batch).
    pub fn set_instruments(&mut self, table: &tapedeck_guest::Instruments) -> Result<()> {
        self.guarded(self.fuel_per_call, None, |s| match &s.bound {
            Bound::Strategy(b) => {
                let t: Vec<strategy::Instrument> = table
                    .iter()
                    .map(|(id, symbol)| strategy::Instrument {
                        id,
                        symbol: symbol.to_string(),
                    })
                    .collect();
                b.call_set_instruments(&mut s.store, &t)
            }
            Bound::Projector(b) => {
                let t: Vec<projector::Instrument> = table
                    .iter()
                    .map(|(id, symbol)| projector::Instrument {
                        id,
                        symbol: symbol.to_string(),
                    })
                    .collect();
                b.call_set_instruments(&mut s.store, &t)
            }
        })
    }

    /// Runs one packed event batch; returns the packed outputs.
    pub fn on_events(&mut self, batch: &[u8]) -> Result<Vec<u8>> {
        let n = batch
            .get(8..12)
            .map_or(0, |c| u32::from_le_bytes(c.try_into().unwrap())) as u64;
        let fuel = self
            .fuel_per_call
            .saturating_add(self.fuel_per_event.saturating_mul(n));
        let out = self.guarded(fuel, Some(batch), |s| call!(s, call_on_events, batch))?;
        // Validate the outputs here, once, so consumers can trust them.
        if let Err(source) = tapedeck_guest::codec::OutputBatch::new(&out)
            .and_then(|b| b.into_iter().try_for_each(|r| r.map(drop)))
        {
            return Err(Error::BadOutput {
                module: self.module,
                source,
            });
        }
        Ok(out)
    }

    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.guarded(self.fuel_per_call, None, |s| call!(s, call_snapshot))
    }

    /// Replaces the guest's state with a snapshot taken from any instance of the same module.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        let module = self.module;
        self.guarded(self.fuel_per_call, None, |s| {
            call!(s, call_restore, snapshot)
        })?
        .map_err(|message| Error::GuestRestore { module, message })
    }

    /// A projector's state as canonical JSON bytes.
    pub fn state(&mut self) -> Result<Vec<u8>> {
        if !matches!(self.bound, Bound::Projector(_)) {
            return Err(Error::WrongWorld {
                module: self.module,
                wanted: "projector",
                actual: "strategy",
            });
        }
        self.guarded(self.fuel_per_call, None, |s| match &s.bound {
            Bound::Projector(b) => b.call_state(&mut s.store),
            Bound::Strategy(_) => unreachable!(),
        })
    }

    /// Runs one guest call with a fuel budget; a trap poisons the instance and is classified
    /// (with the seq span of `batch`, worked out only then).
    fn guarded<T>(
        &mut self,
        fuel: u64,
        batch: Option<&[u8]>,
        f: impl FnOnce(&mut Self) -> wasmtime::Result<T>,
    ) -> Result<T> {
        if let Some(kind) = &self.poisoned {
            return Err(Error::Poisoned {
                module: self.module,
                kind: kind.clone(),
            });
        }
        if self.metered {
            self.store
                .set_fuel(fuel)
                .map_err(|e| Error::engine("setting fuel", e))?;
        }
        match f(self) {
            Ok(v) => Ok(v),
            Err(err) => {
                let kind = self.classify(&err, fuel);
                self.poisoned = Some(kind.clone());
                let (first_seq, last_seq) = batch.map_or((0, 0), seq_span);
                Err(Error::GuestTrap {
                    module: self.module,
                    kind,
                    first_seq,
                    last_seq,
                })
            }
        }
    }

    fn classify(&mut self, err: &wasmtime::Error, budget: u64) -> TrapKind {
        if let Some(requested) = self.store.data_mut().refused_growth.take() {
            return TrapKind::OutOfMemory {
                limit: self.store.data().memory_limit,
                requested,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => TrapKind::OutOfFuel { budget },
            Some(Trap::UnreachableCodeReached) => TrapKind::Panic,
            Some(t) => TrapKind::Other(t.to_string()),
            None => TrapKind::Other(format!("{err:?}")),
        }
    }
}

/// First and last seq of a batch, for error messages (0, 0 if it does not decode).
fn seq_span(batch: &[u8]) -> (u64, u64) {
    let Ok(events) = EventBatch::new(batch) else {
        return (0, 0);
    };
    let mut span = None::<(u64, u64)>;
    for ev in events {
        let Ok(ev) = ev else { break };
        let s = ev.header.seq;
        span = Some(span.map_or((s, s), |(a, _)| (a, s)));
    }
    span.unwrap_or((0, 0))
}
