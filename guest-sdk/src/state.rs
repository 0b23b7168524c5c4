//! serde helpers for configs, snapshots and projected state.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses a module config from JSON; an empty or blank string gives `C::default()`.
pub fn parse_config<C: DeserializeOwned + Default>(config: &str) -> Result<C, String> {
    if config.trim().is_empty() {
        return Ok(C::default());
    }
    serde_json::from_str(config).map_err(|e| format!("invalid module config: {e}"))
}

/// The snapshot form of a guest: its serde JSON, keys in declaration / map order.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("guest state serializes to JSON")
}

pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("snapshot does not restore: {e}"))
}

/// Canonical JSON bytes of a value: object keys sorted at every level, no whitespace,
/// floats in serde_json's shortest round-trip form. Sorted explicitly, so it stays canonical
/// even if some crate turns on serde_json's `preserve_order`.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&sorted(value)).expect("JSON value serializes")
}

/// The same, pretty-printed (two-space indents): what snapshot files hold.
pub fn canonical_json_pretty(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(&sorted(value)).expect("JSON value serializes")
}

fn sorted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
