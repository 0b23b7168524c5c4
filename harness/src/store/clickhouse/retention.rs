//! Retention of the ClickHouse store: 18.16 has no table TTL, so expired data goes by dropping
//! whole day partitions (every table is partitioned by UTC day of event time). The policy per
//! table is here, with seed 004's defaults: market data for weeks, audit data (orders, fills,
//! risk decisions, guardrail transitions) for years. `events` and `event_runs` are the replay
//! source and are kept unless a policy says otherwise (dropping their oldest days makes streams
//! start later; seqs stay gapless from there).
//!
//! [`apply_retention`] is a dry run unless told to execute: it lists what it would drop.

use serde::Serialize;

use super::ChStore;
use super::connect::{exec, fetch};
use super::decode::Cur;
use crate::error::{Error, Result};

/// How long one table keeps its day partitions (`None`: for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    pub table: &'static str,
    pub days: Option<u32>,
}

impl RetentionPolicy {
    /// Seed 004's defaults: market data 90 days (the upper end of its 30–90); orders, fills,
    /// risk decisions and guardrail transitions 7 years; positions and account state 3 years;
    /// system events 180 days; the event log and its replay runs kept.
    pub const DEFAULTS: &'static [RetentionPolicy] = &[
        RetentionPolicy::keep("events"),
        RetentionPolicy::keep("event_runs"),
        RetentionPolicy::days("market_data", 90),
        RetentionPolicy::days("orders", 7 * 365),
        RetentionPolicy::days("fills", 7 * 365),
        RetentionPolicy::days("risk_decisions", 7 * 365),
        RetentionPolicy::days("guardrail_transitions", 7 * 365),
        RetentionPolicy::days("positions_intraday", 3 * 365),
        RetentionPolicy::days("account_state", 3 * 365),
        RetentionPolicy::days("system_events", 180),
    ];

    pub const fn days(table: &'static str, days: u32) -> Self {
        RetentionPolicy {
            table,
            days: Some(days),
        }
    }

    pub const fn keep(table: &'static str) -> Self {
        RetentionPolicy { table, days: None }
    }
}

/// One day partition past its table's retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredPartition {
    pub table: String,
    /// The day, `YYYY-MM-DD`.
    pub partition: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What [`apply_retention`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// The day retention was measured from.
    pub as_of: String,
    /// Partitions were dropped (false: a dry run).
    pub executed: bool,
    pub policies: Vec<RetentionPolicy>,
    pub expired: Vec<ExpiredPartition>,
}

/// The first day a table keeping `days` days still keeps, as of `as_of` (`YYYY-MM-DD`).
fn first_kept_day(as_of: &str, days: u32) -> Result<String> {
    let t = crate::time::parse_rfc3339(&format!("{as_of}T00:00:00Z")).ok_or_else(|| {
        Error::BadEvent {
            stream: String::new(),
            seq: 0,
            message: format!("retention day {as_of:?}: want YYYY-MM-DD"),
        }
    })?;
    Ok(crate::time::day_of(t - days as i64 * 86_400_000_000_000))
}

/// Lists (and with `execute`, drops) the day partitions of `store` older than their table's
/// retention as of day `as_of` (`YYYY-MM-DD`, UTC).
pub fn apply_retention(
    store: &ChStore,
    policies: &[RetentionPolicy],
    as_of: &str,
    execute: bool,
) -> Result<RetentionReport> {
    let mut expired = Vec::new();
    for p in policies {
        let Some(days) = p.days else { continue };
        let cutoff = first_kept_day(as_of, days)?;
        let b = store.block_on(fetch(
            store
                .client
                .query(
                    "SELECT partition, sum(rows), sum(bytes_on_disk) FROM system.parts \
                     WHERE database = currentDatabase() AND table = ? AND active \
                     GROUP BY partition ORDER BY partition",
                )
                .bind(p.table),
            &format!("listing the partitions of {}", p.table),
        ))?;
        let mut c = Cur::new(&b);
        while let Some(partition) = c.str() {
            let (Some(rows), Some(bytes)) = (c.u64(), c.u64()) else {
                break;
            };
            if partition < cutoff.as_str() {
                expired.push(ExpiredPartition {
                    table: p.table.to_string(),
                    partition: partition.to_string(),
                    rows,
                    bytes,
                });
            }
        }
    }
    if execute {
        for x in &expired {
            // Partition values are days this code read from system.parts: digits and dashes.
            if !x.partition.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                continue;
            }
            store.block_on(exec(
                &store.client,
                &format!("ALTER TABLE {} DROP PARTITION '{}'", x.table, x.partition),
            ))?;
        }
    }
    Ok(RetentionReport {
        as_of: as_of.to_string(),
        executed: execute,
        policies: policies.to_vec(),
        expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_and_defaults() {
        assert_eq!(first_kept_day("2024-03-31", 90).unwrap(), "2024-01-01");
        assert_eq!(first_kept_day("2024-03-01", 1).unwrap(), "2024-02-29");
        assert!(first_kept_day("March", 1).is_err());
        let d = RetentionPolicy::DEFAULTS;
        assert_eq!(
            d.iter().find(|p| p.table == "market_data").unwrap().days,
            Some(90)
        );
        assert!(
            d.iter()
                .filter(|p| p.table.starts_with("event"))
                .all(|p| p.days.is_none())
        );
        assert_eq!(d.len(), 2 + super::super::rows::TYPED.len());
    }
}
