//! The run card: everything that determines a run's results (store, streams, range, batch,
//! tolerances, modules with their hashes and configs, runtime limits; for a regression the
//! venue and the `--fail-on` rules; the data each stream gave: seqs, count and XXH3-128 digest),
//! written as `config.json`, read by the Markdown and HTML reports and by `tapedeck rerun`
//! (which finds each module at its `path` and checks its hash).
//!
//! Invariants: `config.json` is [`RunCard::to_json`] pretty-printed; it goes through
//! `serde_json::Value`, so every object's keys are in alphabetical order at every depth
//! (fields are declared in that order too, to read like the file). A replay card has no
//! `venue` or `fail_on` keys. The test below pins the text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::Tolerances;
use crate::regress::FailOn;
use crate::replay::{DataPin, Plugin, Point, ReplayOptions};
use crate::runtime::{Budget, ModuleKind, RuntimeConfig};
use crate::stats::StatsConfig;
use crate::venue::VenueConfig;

/// The run card of a replay or a regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCard {
    /// The guest ABI this harness speaks.
    pub abi_version: u32,
    pub batch: usize,
    /// Per stream, by key: what the run read ([`RunCard::pin_data`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataPin>,
    /// Regression only: the rules the verdict applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on: Option<Vec<FailOn>>,
    pub from: Option<Point>,
    /// In the order given (a regression: baseline, then candidate).
    pub modules: Vec<ModuleCard>,
    pub runtime: RuntimeCard,
    /// A shard's partial run only: which shard, and the identity of the whole work
    /// ([`RunCard::work`]); `tapedeck merge` checks it and drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardCard>,
    /// Backtest only: how returns are measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsConfig>,
    /// The store, as [`crate::store::StoreUri`] describes it (no password).
    pub store: String,
    /// The stream glob.
    pub streams: String,
    pub tapedeck_version: String,
    pub to: Option<Point>,
    pub tolerances: Tolerances,
    /// Regression and backtest: the simulated venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<VenueConfig>,
}

/// The shard a partial run directory holds, of which work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCard {
    pub count: u32,
    pub index: u32,
    /// [`RunCard::work`] of the whole run.
    pub work: String,
}

/// One module of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCard {
    pub abi_version: u32,
    /// Its own budget, when it is not the runtime's (`RuntimeConfig::budgets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Its config JSON as given ("" for its defaults).
    pub config: String,
    #[serde(deserialize_with = "module_kind")]
    pub kind: ModuleKind,
    pub name: String,
    /// Where it was loaded from, as given (relative to the directory the run was made in).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Of the module's bytes, hex.
    pub sha256: String,
    pub version: String,
}

fn module_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ModuleKind, D::Error> {
    match String::deserialize(d)?.as_str() {
        "strategy" => Ok(ModuleKind::Strategy),
        "projector" => Ok(ModuleKind::Projector),
        other => Err(serde::de::Error::custom(format!(
            "module kind {other:?}: want strategy or projector"
        ))),
    }
}

/// The runtime limits that bear on results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeCard {
    pub fuel: bool,
    pub fuel_per_call: u64,
    pub fuel_per_event: u64,
    pub memory_limit: usize,
}

impl RunCard {
    /// The card as `config.json` holds it (keys sorted at every depth).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("the run card serializes")
    }

    /// The card with what each stream gave the run.
    pub fn pin_data(mut self, data: Vec<DataPin>) -> Self {
        self.data = data;
        self
    }

    /// The identity of the work this card describes, whatever part of it a process ran:
    /// XXH3-128 (hex) of the card's JSON without its data pins and shard. Shards of one run
    /// share it; any other difference (store, streams, range, modules, configs, limits)
    /// changes it.
    pub fn work(&self) -> String {
        let whole = RunCard {
            data: Vec::new(),
            shard: None,
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&whole.to_json()).expect("the run card serializes");
        format!("{:032x}", twox_hash::XxHash3_128::oneshot(&bytes))
    }

    /// The card of `shard` of this card's work.
    pub fn for_shard(self, shard: crate::shard::Shard) -> Self {
        let work = self.work();
        RunCard {
            shard: Some(ShardCard {
                count: shard.count,
                index: shard.index,
                work,
            }),
            ..self
        }
    }

    /// The `i`th module, if there is one.
    pub fn module(&self, i: usize) -> Option<&ModuleCard> {
        self.modules.get(i)
    }
}

impl ModuleCard {
    /// The first 12 hex digits of the hash, for tables.
    pub fn short_sha(&self) -> &str {
        &self.sha256[..self.sha256.len().min(12)]
    }
}

/// The run card of a replay.
pub fn run_card(
    store: &str,
    plugins: &[Plugin],
    opts: &ReplayOptions,
    rt: &RuntimeConfig,
) -> RunCard {
    RunCard {
        abi_version: tapedeck_guest::ABI_VERSION,
        batch: opts.batch,
        data: Vec::new(),
        fail_on: None,
        from: opts.from,
        modules: plugins
            .iter()
            .map(|p| {
                let m = &p.module;
                ModuleCard {
                    abi_version: m.info().abi_version,
                    budget: Some(m.budget()).filter(|b| *b != rt.default_budget()),
                    config: p.config.clone(),
                    kind: m.kind(),
                    name: m.info().name.clone(),
                    path: m.origin().to_string(),
                    sha256: m.hash().hex(),
                    version: m.info().version.clone(),
                }
            })
            .collect(),
        runtime: RuntimeCard {
            fuel: rt.fuel,
            fuel_per_call: rt.fuel_per_call,
            fuel_per_event: rt.fuel_per_event,
            memory_limit: rt.memory_limit,
        },
        store: store.to_string(),
        streams: opts.streams.clone(),
        tapedeck_version: env!("CARGO_PKG_VERSION").to_string(),
        to: opts.to,
        tolerances: opts.tolerances.clone(),
        venue: None,
        stats: None,
        shard: None,
    }
}

/// The run card of a regression: a replay card of both strategies plus the venue and rules.
pub fn regress_card(
    store: &str,
    baseline: &Plugin,
    candidate: &Plugin,
    opts: &ReplayOptions,
    rt: &RuntimeConfig,
    venue: &VenueConfig,
    fail_on: &[FailOn],
) -> RunCard {
    RunCard {
        venue: Some(venue.clone()),
        fail_on: Some(fail_on.to_vec()),
        ..run_card(store, &[baseline.clone(), candidate.clone()], opts, rt)
    }
}

/// The run card of a backtest: a replay card of the strategy plus the venue and how returns
/// are measured.
pub fn backtest_card(
    store: &str,
    strategy: &Plugin,
    opts: &ReplayOptions,
    rt: &RuntimeConfig,
    venue: &VenueConfig,
    stats: &StatsConfig,
) -> RunCard {
    RunCard {
        venue: Some(venue.clone()),
        stats: Some(*stats),
        ..run_card(store, std::slice::from_ref(strategy), opts, rt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn module(name: &str, kind: ModuleKind) -> ModuleCard {
        ModuleCard {
            abi_version: 1,
            budget: None,
            config: r#"{"fast":5}"#.into(),
            kind,
            name: name.into(),
            path: String::new(),
            sha256: "0123456789abcdef".into(),
            version: "0.2.0".into(),
        }
    }

    fn card() -> RunCard {
        RunCard {
            abi_version: 1,
            batch: 512,
            data: Vec::new(),
            fail_on: Some(vec![
                FailOn::Divergence,
                FailOn::PnlDrop {
                    amount: 5.0,
                    percent: true,
                },
            ]),
            from: Some(Point::Seq(3)),
            modules: vec![
                module("ema-cross", ModuleKind::Strategy),
                module("book", ModuleKind::Projector),
            ],
            runtime: RuntimeCard {
                fuel: true,
                fuel_per_call: 10,
                fuel_per_event: 20,
                memory_limit: 1 << 20,
            },
            shard: None,
            store: "file:fixtures/store".into(),
            streams: "md:*".into(),
            tapedeck_version: "9.9.9".into(),
            to: Some(Point::Time(7)),
            tolerances: Tolerances {
                numeric: vec![(".x.*".into(), 1e-9)],
            },
            venue: Some(VenueConfig::default()),
            stats: None,
        }
    }

    /// How the card was built before it had a type: `json!` objects, venue and rules added
    /// after. `config.json` must not change.
    fn as_it_was(c: &RunCard) -> Value {
        let modules: Vec<Value> = c
            .modules
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "version": m.version,
                    "kind": m.kind,
                    "abi_version": m.abi_version,
                    "sha256": m.sha256,
                    "config": m.config,
                })
            })
            .collect();
        let mut v = json!({
            "tapedeck_version": c.tapedeck_version,
            "abi_version": c.abi_version,
            "store": c.store,
            "streams": c.streams,
            "from": c.from,
            "to": c.to,
            "batch": c.batch,
            "tolerances": c.tolerances,
            "modules": modules,
            "runtime": {
                "memory_limit": c.runtime.memory_limit,
                "fuel_per_event": c.runtime.fuel_per_event,
                "fuel_per_call": c.runtime.fuel_per_call,
                "fuel": c.runtime.fuel,
            },
        });
        if let Some(venue) = &c.venue {
            v["venue"] = serde_json::to_value(venue).unwrap();
        }
        if let Some(rules) = &c.fail_on {
            v["fail_on"] = serde_json::to_value(rules).unwrap();
        }
        v
    }

    #[test]
    fn config_json_is_pinned() {
        let c = card();
        let text = serde_json::to_string(&c.to_json()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"abi_version":1,"batch":512,"#,
                r#""fail_on":[{"rule":"divergence"},{"amount":5.0,"percent":true,"rule":"pnl-drop"}],"#,
                r#""from":{"seq":3},"modules":["#,
                r#"{"abi_version":1,"config":"{\"fast\":5}","kind":"strategy","name":"ema-cross","sha256":"0123456789abcdef","version":"0.2.0"},"#,
                r#"{"abi_version":1,"config":"{\"fast\":5}","kind":"projector","name":"book","sha256":"0123456789abcdef","version":"0.2.0"}],"#,
                r#""runtime":{"fuel":true,"fuel_per_call":10,"fuel_per_event":20,"memory_limit":1048576},"#,
                r#""store":"file:fixtures/store","streams":"md:*","tapedeck_version":"9.9.9","#,
                r#""to":{"time":7},"tolerances":{"numeric":[[".x.*",1e-9]]},"#,
                r#""venue":{"latency_ns":0,"maker_fee_bps":1.0,"sample_every":1000,"taker_fee_bps":5.0}}"#,
            )
        );
        assert_eq!(
            serde_json::to_string_pretty(&c.to_json()).unwrap(),
            serde_json::to_string_pretty(&as_it_was(&c)).unwrap()
        );
    }

    #[test]
    fn a_card_pins_data_and_module_paths_and_reads_back() {
        let mut c = card();
        c.modules[0].path = "strategies/ema.wasm".into();
        let c = c.pin_data(vec![DataPin {
            digest: "ab".into(),
            events: 3,
            first_seq: 1,
            last_seq: 3,
            stream: "md:x".into(),
        }]);
        let text = serde_json::to_string(&c.to_json()).unwrap();
        assert!(
            text.starts_with(concat!(
                r#"{"abi_version":1,"batch":512,"#,
                r#""data":[{"digest":"ab","events":3,"first_seq":1,"last_seq":3,"stream":"md:x"}],"#,
            )),
            "{text}"
        );
        assert!(text.contains(r#""name":"ema-cross","path":"strategies/ema.wasm","#));
        let back: RunCard = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        // A card written before data and paths were pinned still reads.
        let old: RunCard = serde_json::from_value(as_it_was(&card())).unwrap();
        assert_eq!(old, card());
    }

    #[test]
    fn a_replay_card_has_no_venue_or_rules() {
        let c = RunCard {
            fail_on: None,
            venue: None,
            from: None,
            to: None,
            tolerances: Tolerances::default(),
            ..card()
        };
        let v = c.to_json();
        assert!(
            v.get("venue").is_none() && v.get("fail_on").is_none(),
            "{v}"
        );
        assert_eq!((&v["from"], &v["to"]), (&Value::Null, &Value::Null));
        assert_eq!(
            serde_json::to_string_pretty(&v).unwrap(),
            serde_json::to_string_pretty(&as_it_was(&c)).unwrap()
        );
        assert_eq!(c.module(0).map(ModuleCard::short_sha), Some("0123456789ab"));
        assert!(c.module(2).is_none());
    }
}
