//! The Wasm runtime: one wasmtime `Engine`, modules compiled once and cached on disk by
//! content hash, `InstancePre` + the pooling allocator for cheap instances, one `Store` per
//! (stream, module) with a memory cap and a fuel budget per call.
//!
//! Components that do not fit a pool slot (componentize-py's CPython is ~38 core instances
//! and several tables) are allocated on demand by a second engine of the same configuration,
//! chosen by what the component declares ([`Footprint`]). Fuel is there during instantiation
//! too (such guests run code while they instantiate). Budgets (memory cap, fuel) are per
//! module: the runtime's defaults, overridden by name in [`RuntimeConfig::budgets`] or by
//! [`Module::with_budget`].

mod bindings;
mod cache;
mod footprint;
mod instance;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use crate::hash::ModuleHash;
pub use cache::CacheStatus;
pub use footprint::Footprint;
pub use instance::{Instance, StoreState};

use cache::CompileCache;
use footprint::SlotLimits;

use crate::error::{Error, Result};

/// Settings of a runtime; part of every run card.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeConfig {
    /// Where compiled modules are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Linear memory cap per instance, bytes.
    pub memory_limit: usize,
    /// Fuel for one `on-events` call: `fuel_per_event * events + fuel_per_call`.
    pub fuel_per_event: u64,
    /// Fuel for control calls (init, snapshot, restore, state) and the fixed part of a batch.
    pub fuel_per_call: u64,
    /// Instances the pooling allocator keeps slots for (live at once).
    pub max_instances: u32,
    /// Meter fuel. On for replay (deterministic CPU limits); off only to measure its cost.
    pub fuel: bool,
    /// Budgets of particular modules, by the name their `metadata()` gives, over the defaults
    /// above (a Python or JavaScript guest needs more fuel per event than a Rust one).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub budgets: BTreeMap<String, Budget>,
}

/// What one module's instances may use: a memory cap and fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Linear memory cap per instance, bytes.
    pub memory_limit: usize,
    /// Fuel for one `on-events` call: `fuel_per_event * events + fuel_per_call`.
    pub fuel_per_event: u64,
    /// Fuel for instantiation, control calls and the fixed part of a batch.
    pub fuel_per_call: u64,
}

impl RuntimeConfig {
    /// The budget of a module named `name`: its entry in `budgets`, else the defaults.
    pub fn budget_for(&self, name: &str) -> Budget {
        self.budgets
            .get(name)
            .copied()
            .unwrap_or_else(|| self.default_budget())
    }

    /// The budget of every module without an entry in `budgets`.
    pub fn default_budget(&self) -> Budget {
        Budget {
            memory_limit: self.memory_limit,
            fuel_per_event: self.fuel_per_event,
            fuel_per_call: self.fuel_per_call,
        }
    }
}

impl Budget {
    /// Parses `NAME:key=value,...` over `base` (the runtime's defaults): keys `memory` (bytes,
    /// or with a `K`, `M` or `G` suffix, binary), `fuel-per-event`, `fuel-per-call`. What
    /// `--budget` of replay, regress and backtest takes.
    pub fn parse_rule(spec: &str, base: Budget) -> std::result::Result<(String, Budget), String> {
        let (name, rest) = spec
            .split_once(':')
            .filter(|(n, r)| !n.is_empty() && !r.is_empty())
            .ok_or_else(|| {
                format!(
                    "budget `{spec}`: expected NAME:key=value,... (keys: memory, fuel-per-event, \
                     fuel-per-call), e.g. ema-cross-py:fuel-per-event=500000,memory=512M"
                )
            })?;
        let mut b = base;
        for kv in rest.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("budget `{spec}`: `{kv}` is not key=value"))?;
            let number = |v: &str, unit: u64| {
                v.parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(unit))
                    .ok_or_else(|| format!("budget `{spec}`: `{v}` is not a number for {k}"))
            };
            match k.trim() {
                "memory" => {
                    let v = v.trim();
                    let (digits, unit) = match v.char_indices().last() {
                        Some((i, 'K' | 'k')) => (&v[..i], 1 << 10),
                        Some((i, 'M' | 'm')) => (&v[..i], 1 << 20),
                        Some((i, 'G' | 'g')) => (&v[..i], 1 << 30),
                        _ => (v, 1),
                    };
                    b.memory_limit = usize::try_from(number(digits, unit)?)
                        .map_err(|_| format!("budget `{spec}`: memory too large"))?;
                }
                "fuel-per-event" => b.fuel_per_event = number(v.trim(), 1)?,
                "fuel-per-call" => b.fuel_per_call = number(v.trim(), 1)?,
                other => {
                    return Err(format!(
                        "budget `{spec}`: unknown key `{other}` (memory, fuel-per-event, \
                         fuel-per-call)"
                    ));
                }
            }
        }
        Ok((name.to_string(), b))
    }
}

/// One pool slot: what a Rust guest needs (one core instance, memory and table; a little room).
const SLOT: SlotLimits = SlotLimits {
    core_instances: 4,
    memories: 1,
    tables: 1,
    table_elements: 20_000,
};

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: default_cache_dir(),
            memory_limit: 256 << 20,
            fuel_per_event: 100_000,
            fuel_per_call: 1_000_000_000,
            max_instances: 256,
            fuel: true,
            budgets: BTreeMap::new(),
        }
    }
}

/// `$TAPEDECK_CACHE_DIR`, else `$XDG_CACHE_HOME/tapedeck`, else `$HOME/.cache/tapedeck`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("TAPEDECK_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("tapedeck")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/tapedeck")))
}

/// Which world a module exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    Strategy,
    Projector,
}

impl ModuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Strategy => "strategy",
            ModuleKind::Projector => "projector",
        }
    }
}

/// What a module says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub abi_version: u32,
}

#[derive(Clone)]
enum Pre {
    Strategy(bindings::strategy::StrategyPre<StoreState>),
    Projector(bindings::projector::ProjectorPre<StoreState>),
}

/// A loaded, ABI-checked module, ready to instantiate any number of times. Cheap to clone and
/// shareable across threads.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

#[derive(Clone)]
struct ModuleInner {
    hash: ModuleHash,
    origin: String,
    kind: ModuleKind,
    info: ModuleInfo,
    cache: CacheStatus,
    pre: Pre,
    footprint: Footprint,
    /// Allocated on demand (it does not fit a pool slot), by the runtime's second engine.
    on_demand: bool,
    budget: Budget,
}

impl Module {
    pub fn hash(&self) -> ModuleHash {
        self.inner.hash
    }

    /// The file (or label) it was loaded from.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    pub fn kind(&self) -> ModuleKind {
        self.inner.kind
    }

    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    /// Whether its compiled code came from the compile cache.
    pub fn cache(&self) -> &CacheStatus {
        &self.inner.cache
    }

    /// What the component declares (instances, memories, tables).
    pub fn footprint(&self) -> &Footprint {
        &self.inner.footprint
    }

    /// Whether its instances are allocated on demand rather than from the pool (components
    /// that do not fit a pool slot, such as Python's).
    pub fn on_demand(&self) -> bool {
        self.inner.on_demand
    }

    /// The memory cap and fuel its instances get.
    pub fn budget(&self) -> Budget {
        self.inner.budget
    }

    /// The same module with another budget (for instances created from then on).
    pub fn with_budget(&self, budget: Budget) -> Module {
        let mut inner = (*self.inner).clone();
        inner.budget = budget;
        Module {
            inner: Arc::new(inner),
        }
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("origin", &self.inner.origin)
            .field("hash", &self.inner.hash)
            .field("kind", &self.inner.kind)
            .field("info", &self.inner.info)
            .finish()
    }
}

/// The engine and everything compiled with it.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    /// The same configuration with on-demand allocation, for components that do not fit a
    /// pool slot.
    on_demand: Engine,
    config: Arc<RuntimeConfig>,
    cache: Option<Arc<CompileCache>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish()
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances;
        // Memory slots are sized for the largest budget, so no module's cap is cut by its slot.
        let max_memory = config
            .budgets
            .values()
            .map(|b| b.memory_limit)
            .fold(config.memory_limit, usize::max);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(SLOT.core_instances))
            .max_core_instances_per_component(SLOT.core_instances)
            .total_memories(n)
            .max_memories_per_component(SLOT.memories)
            .total_tables(n)
            .max_tables_per_component(SLOT.tables)
            .table_elements(SLOT.table_elements as usize)
            .max_memory_size(max_memory);
        let mut c = Config::new();
        c.cranelift_nan_canonicalization(true)
            .consume_fuel(config.fuel)
            .wasm_component_model(true)
            // Sync calls only: without this every component call pays for async task bookkeeping.
            .concurrency_support(false);
        let on_demand =
            Engine::new(&c).map_err(|e| Error::engine("creating the wasmtime engine", e))?;
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine =
            Engine::new(&c).map_err(|e| Error::engine("creating the wasmtime engine", e))?;
        // A cache that cannot be used costs compile time, not the run.
        let cache = config.cache_dir.as_deref().and_then(|dir| {
            CompileCache::open(dir)
                .inspect_err(|why| {
                    eprintln!("warning: compile cache {} not used: {why}", dir.display())
                })
                .ok()
        });
        Ok(Runtime {
            engine,
            on_demand,
            config: Arc::new(config),
            cache: cache.map(Arc::new),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a module file: a component, or a core module carrying wit-bindgen's component
    /// type (componentized here). Checks its world and ABI version.
    pub fn load(&self, path: &Path) -> Result<Module> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.load_bytes(&bytes, &path.display().to_string())
    }

    pub fn load_bytes(&self, bytes: &[u8], origin: &str) -> Result<Module> {
        let hash = ModuleHash::of(bytes);
        let footprint = Footprint::of(bytes);
        if !footprint.imports.is_empty() {
            return Err(Error::NotAModule {
                path: origin.to_string(),
                reason: format!(
                    "it imports {}; guests import nothing (no WASI: no clock, files, network or \
                     randomness). Build it import-free: `tapedeck build DIR` does; by hand, \
                     Python: `componentize-py ... componentize --stub-wasi APP`, JavaScript: \
                     `componentize-js ... -d stdio random clocks http fetch-event`, Rust: \
                     tapedeck-guest's export macro for wasm32-unknown-unknown",
                    footprint.imports.join(", ")
                ),
            });
        }
        let on_demand = !footprint.fits(&SLOT);
        let engine = if on_demand {
            &self.on_demand
        } else {
            &self.engine
        };
        let (component, cache) = self.compile_cached(engine, bytes, hash, origin)?;
        let linker = Linker::<StoreState>::new(engine);
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| Error::NotAModule {
                path: origin.to_string(),
                reason: format!("it imports something; guests get no imports ({e})"),
            })?;
        let pre = if let Ok(p) = bindings::projector::ProjectorPre::new(instance_pre.clone()) {
            Pre::Projector(p)
        } else if let Ok(p) = bindings::strategy::StrategyPre::new(instance_pre.clone()) {
            Pre::Strategy(p)
        } else if let Some(guest) = self.older_abi_version(engine, &instance_pre) {
            // A guest built against an older SDK does not match either world, but may still
            // say which ABI it speaks: refuse it by version, which says to rebuild.
            return Err(Error::AbiMismatch {
                path: origin.to_string(),
                guest,
                host: tapedeck_guest::ABI_VERSION,
            });
        } else {
            return Err(Error::NotAModule {
                path: origin.to_string(),
                reason: "it exports neither the `strategy` nor the `projector` world of tapedeck:harness".into(),
            });
        };
        let kind = match pre {
            Pre::Strategy(_) => ModuleKind::Strategy,
            Pre::Projector(_) => ModuleKind::Projector,
        };
        let mut module = Module {
            inner: Arc::new(ModuleInner {
                hash,
                origin: origin.to_string(),
                kind,
                info: ModuleInfo {
                    name: String::new(),
                    version: String::new(),
                    abi_version: 0,
                },
                cache,
                pre,
                footprint,
                on_demand,
                budget: self.config.default_budget(),
            }),
        };
        let info = self.instantiate(&module)?.metadata()?;
        if info.abi_version != tapedeck_guest::ABI_VERSION {
            return Err(Error::AbiMismatch {
                path: origin.to_string(),
                guest: info.abi_version,
                host: tapedeck_guest::ABI_VERSION,
            });
        }
        let inner = Arc::get_mut(&mut module.inner).expect("module not shared yet");
        inner.budget = self.config.budget_for(&info.name);
        inner.info = info;
        Ok(module)
    }

    /// The `abi-version` a component's `metadata()` reports, called without the typed
    /// bindings (for guests of an older contract); None if it has no such function.
    fn older_abi_version(
        &self,
        engine: &Engine,
        pre: &wasmtime::component::InstancePre<StoreState>,
    ) -> Option<u32> {
        use wasmtime::component::Val;
        let mut store = Store::new(engine, StoreState::new(self.config.memory_limit));
        store.limiter(|s| s);
        if self.config.fuel {
            store.set_fuel(self.config.fuel_per_call).ok()?;
        }
        let instance = pre.instantiate(&mut store).ok()?;
        let metadata = instance.get_func(&mut store, "metadata")?;
        let mut results = [Val::Bool(false)];
        metadata.call(&mut store, &[], &mut results).ok()?;
        match &results[0] {
            Val::Record(fields) => fields
                .iter()
                .find_map(|(name, v)| match (name.as_str(), v) {
                    ("abi-version", Val::U32(n)) => Some(*n),
                    _ => None,
                }),
            _ => None,
        }
    }

    /// A fresh instance of `module` in its own store (not yet `init`ed).
    pub fn instantiate(&self, module: &Module) -> Result<Instance> {
        let engine = if module.inner.on_demand {
            &self.on_demand
        } else {
            &self.engine
        };
        let budget = module.inner.budget;
        let mut store = Store::new(engine, StoreState::new(budget.memory_limit));
        store.limiter(|s| s);
        Instance::new(store, module, &self.config)
    }

    /// Compiles `bytes`, or loads the compiled artifact cached under their hash (verified
    /// first: see `cache`).
    fn compile_cached(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: ModuleHash,
        origin: &str,
    ) -> Result<(Component, CacheStatus)> {
        let name = format!("{}-{}.cwasm", hash.hex(), compat_tag(engine));
        let mut status = CacheStatus::Compiled;
        if let Some(cache) = &self.cache {
            match cache.get(engine, &name) {
                Ok(Some(c)) => return Ok((c, CacheStatus::Hit)),
                Ok(None) => {}
                Err(reason) => {
                    eprintln!(
                        "warning: compile cache entry {} for {origin} not used: {reason}; recompiling",
                        cache.path(&name).display()
                    );
                    status = CacheStatus::Replaced { reason };
                }
            }
        }
        let component_bytes = componentize(bytes, origin)?;
        let component =
            Component::from_binary(engine, &component_bytes).map_err(|e| Error::NotAModule {
                path: origin.to_string(),
                reason: format!("{e:?}"),
            })?;
        if let Some(cache) = &self.cache {
            let artifact = component
                .serialize()
                .map_err(|e| Error::engine("serializing a compiled module", e))?;
            // Best effort: a cache that cannot be written only costs compile time.
            let _ = cache.put(&name, &artifact);
        }
        Ok((component, status))
    }
}

/// A tag of everything that makes a compiled artifact valid for `engine`.
fn compat_tag(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the tag is stable across runs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A component as is; a core module made into one with its embedded component type.
pub fn componentize(bytes: &[u8], origin: &str) -> Result<Vec<u8>> {
    // The preamble: "\0asm", then a version and a layer (0 for core modules, 1 for components).
    let layer = bytes
        .get(..8)
        .filter(|p| p.starts_with(b"\0asm"))
        .map(|p| p[6]);
    if layer == Some(1) {
        return Ok(bytes.to_vec());
    }
    if layer != Some(0) {
        return Err(Error::NotAModule {
            path: origin.to_string(),
            reason: "not a Wasm module or component".into(),
        });
    }
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|enc| enc.validate(true).encode())
        .map_err(|e| Error::NotAModule {
            path: origin.to_string(),
            reason: format!(
                "cannot make a component of this core module; was it built with tapedeck-guest's export macro? ({e:#})"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_rules_parse_over_the_defaults_and_say_what_is_wrong() {
        let base = RuntimeConfig::default().default_budget();
        let (name, b) =
            Budget::parse_rule("ema-cross-py:fuel-per-event=500000,memory=512M", base).unwrap();
        assert_eq!(name, "ema-cross-py");
        assert_eq!(
            b,
            Budget {
                memory_limit: 512 << 20,
                fuel_per_event: 500_000,
                ..base
            }
        );
        for (bad, says) in [
            ("nocolon", "expected NAME:"),
            ("x:fuel=1", "unknown key `fuel`"),
            ("x:memory=lots", "not a number"),
            ("x:fuel-per-call", "not key=value"),
        ] {
            let e = Budget::parse_rule(bad, base).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
