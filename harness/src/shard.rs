//! Shards: one run's work cut into `count` disjoint parts, each run by its own process
//! (a Slurm array task, a Kubernetes Indexed Job pod), then merged by `tapedeck merge` into
//! the run directory the single process would have written.
//!
//! Invariants:
//! - A stream belongs to shard `xxh3_128(key) % count` (XXH3-128 with seed 0 of the key's
//!   UTF-8 bytes, never a per-process hasher): the assignment depends on the key and the
//!   count alone, not on the order a store lists its streams nor on the machine.
//! - Work listed by position (a sweep's parameter points) is dealt round robin:
//!   point `i` belongs to shard `i % count` ([`Shard::takes_point`]).
//! - Every stream and point belongs to exactly one shard of `count`.
//!
//! [`Shard::from_env`] reads the index a scheduler gives its tasks: Slurm's
//! `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN` when set) of `SLURM_ARRAY_TASK_COUNT`,
//! or Kubernetes' `JOB_COMPLETION_INDEX` of `TAPEDECK_SHARDS` (the manifest sets it to the
//! Job's `completions`).

use std::fmt;

use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_128;

use crate::error::{Error, Result};

/// Shard `index` of `count` (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The environment variables [`Shard::from_env`] reads, in the order it tries them.
pub const ENV_VARS: [&str; 5] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "JOB_COMPLETION_INDEX",
    "TAPEDECK_SHARDS",
];

fn bad(spec: &str, reason: impl Into<String>) -> Error {
    Error::BadShard {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        let spec = format!("{index}/{count}");
        if count == 0 {
            return Err(bad(&spec, "the shard count is 0: want at least 1"));
        }
        if index >= count {
            return Err(bad(
                &spec,
                format!(
                    "shard {index} of {count} does not exist: shards are numbered 0 to {}",
                    count - 1
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// `I/N`, or `env` (read from the process environment, see [`Shard::from_env`]).
    pub fn parse(spec: &str) -> Result<Shard> {
        if spec == "env" {
            return Shard::from_env(|k| std::env::var(k).ok());
        }
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| bad(spec, "want I/N (shard I of N, from 0), or env"))?;
        let num = |s: &str, what: &str| {
            s.trim().parse::<u32>().map_err(|_| {
                bad(
                    spec,
                    format!("{what} {s:?} is not a whole number: want I/N, or env"),
                )
            })
        };
        Shard::new(num(i, "the index")?, num(n, "the count")?)
    }

    /// The shard a scheduler's task is, from environment variables read through `var`:
    /// Slurm's array task when `SLURM_ARRAY_TASK_ID` is set, else a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX` with the count in `TAPEDECK_SHARDS`. Each missing or garbled
    /// variable is named.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let get = |name: &str| -> Result<Option<u32>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| bad("env", format!("{name}={v:?} is not a whole number"))),
            }
        };
        let need = |name: &str, because: &str| -> Result<u32> {
            get(name)?.ok_or_else(|| bad("env", format!("{name} is not set ({because})")))
        };
        if let Some(id) = get("SLURM_ARRAY_TASK_ID")? {
            let count = need(
                "SLURM_ARRAY_TASK_COUNT",
                "SLURM_ARRAY_TASK_ID is, so this is a Slurm array task; Slurm sets both",
            )?;
            let min = get("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(min).ok_or_else(|| {
                bad(
                    "env",
                    format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"),
                )
            })?;
            return Shard::new(index, count).map_err(|e| match e {
                Error::BadShard { reason, .. } => bad(
                    "env",
                    format!("from SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_COUNT={count}: {reason} (submit the array as --array=0-{})", count.max(1) - 1),
                ),
                e => e,
            });
        }
        if let Some(index) = get("JOB_COMPLETION_INDEX")? {
            let count = need(
                "TAPEDECK_SHARDS",
                "JOB_COMPLETION_INDEX is, so this is an Indexed Job pod: set TAPEDECK_SHARDS to the Job's completions",
            )?;
            return Shard::new(index, count).map_err(|e| match e {
                Error::BadShard { reason, .. } => bad(
                    "env",
                    format!("from JOB_COMPLETION_INDEX={index}, TAPEDECK_SHARDS={count}: {reason}"),
                ),
                e => e,
            });
        }
        Err(bad(
            "env",
            "neither SLURM_ARRAY_TASK_ID (a Slurm array task) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job pod, with TAPEDECK_SHARDS) is set: run under one of them, or give --shard I/N",
        ))
    }

    /// The shard of `count` that stream `key` belongs to.
    pub fn of_stream(key: &str, count: u32) -> u32 {
        (XxHash3_128::oneshot(key.as_bytes()) % u128::from(count.max(1))) as u32
    }

    /// Whether stream `key` is this shard's.
    pub fn takes_stream(&self, key: &str) -> bool {
        Shard::of_stream(key, self.count) == self.index
    }

    /// Whether the `index`th item of a listed work (a sweep's point) is this shard's.
    pub fn takes_point(&self, index: usize) -> bool {
        index % self.count as usize == self.index as usize
    }
}

/// Whether `given` (shards sorted by index, each with the directory it came from) holds each
/// of `count` shards once; otherwise the reason, naming the shard given twice or those missing.
pub fn whole_set(
    given: &[(Shard, &std::path::Path)],
    count: u32,
) -> std::result::Result<(), String> {
    for w in given.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(format!(
                "shard {} is given twice: {} and {}",
                w[0].0,
                w[0].1.display(),
                w[1].1.display()
            ));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !given.iter().any(|s| s.0.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard(s) {} missing: {} of {count} given",
            missing.join(", "),
            given.len()
        ));
    }
    Ok(())
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard> {
        Shard::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_i_of_n_and_refuses_what_names_no_shard() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert_eq!(Shard::parse("0/1").unwrap().to_string(), "0/1");
        for (spec, says) in [
            (
                "4/4",
                "shard 4 of 4 does not exist: shards are numbered 0 to 3",
            ),
            ("0/0", "the shard count is 0"),
            ("1", "want I/N"),
            ("a/3", "the index \"a\" is not a whole number"),
            ("1/-3", "the count \"-3\" is not a whole number"),
        ] {
            let e = Shard::parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn env_reads_slurm_then_kubernetes_and_names_the_variable() {
        let s = Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]));
        assert_eq!(s.unwrap(), Shard { index: 3, count: 4 });
        let s = Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]));
        assert_eq!(s.unwrap(), Shard { index: 1, count: 2 });
        let s = Shard::from_env(env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("TAPEDECK_SHARDS", "8"),
        ]));
        assert_eq!(s.unwrap(), Shard { index: 1, count: 8 });
        for (vars, says) in [
            (&[][..], "neither SLURM_ARRAY_TASK_ID"),
            (
                &[("SLURM_ARRAY_TASK_ID", "1")][..],
                "SLURM_ARRAY_TASK_COUNT is not set",
            ),
            (
                &[("SLURM_ARRAY_TASK_ID", "x1")][..],
                "SLURM_ARRAY_TASK_ID=\"x1\" is not a whole number",
            ),
            (
                &[("JOB_COMPLETION_INDEX", "1")][..],
                "TAPEDECK_SHARDS is not set",
            ),
            (
                &[("JOB_COMPLETION_INDEX", "1"), ("TAPEDECK_SHARDS", "four")][..],
                "TAPEDECK_SHARDS=\"four\" is not a whole number",
            ),
            (
                &[("JOB_COMPLETION_INDEX", "4"), ("TAPEDECK_SHARDS", "4")][..],
                "JOB_COMPLETION_INDEX=4, TAPEDECK_SHARDS=4: shard 4 of 4 does not exist",
            ),
            (
                &[("JOB_COMPLETION_INDEX", "0"), ("TAPEDECK_SHARDS", "0")][..],
                "the shard count is 0",
            ),
        ] {
            let e = Shard::from_env(env(vars)).unwrap_err().to_string();
            assert!(e.contains(says), "{vars:?}: {e}");
        }
    }

    #[test]
    fn every_stream_is_in_exactly_one_shard_whatever_the_order() {
        let keys: Vec<String> = (0..200).map(|i| format!("md:sim:S{i}")).collect();
        for count in 1..6 {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            for k in &keys {
                assert_eq!(shards.iter().filter(|s| s.takes_stream(k)).count(), 1);
            }
            for p in 0..50 {
                assert_eq!(shards.iter().filter(|s| s.takes_point(p)).count(), 1);
            }
        }
        // Pinned: the assignment is part of the on-disk contract between shards and merge.
        let of: Vec<u32> = ["md:sim:A", "md:sim:B", "exec:x", ""]
            .iter()
            .map(|k| Shard::of_stream(k, 4))
            .collect();
        assert_eq!(of, PINNED);
    }

    const PINNED: [u32; 4] = [1, 0, 2, 3];
}
