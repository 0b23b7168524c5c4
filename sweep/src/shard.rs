//! Sharded sweeps: a shard (`--shard I/N`) runs the points with `index % N == I`
//! ([`Shard::takes_point`]) and writes a partial sweep directory; `tapedeck merge` turns
//! the shards' directories into the single process's sweep directory.
//!
//! A shard's directory: `sweep.json` (the whole sweep's card, the same in every shard),
//! `sweep-shard.json` ([`ShardFile`]: which shard, the sweep's [`SweepCard::work`], the
//! shard's wall clock and its points' summaries) and `points/NNNN/` of its points.
//!
//! Invariants: a point's run directory is a whole backtest, the same bytes whichever
//! process ran it (but its `summary.json` timing); the merge copies them, then writes the
//! sweep's own files with the single run's [`write_sweep_dir`] from the summaries, which go
//! through JSON with `float_roundtrip` (every f64 back bit for bit). Refusals name the
//! directories: not a sweep shard's, shards of different sweeps or counts, a shard given
//! twice or missing, a point in the wrong shard or in two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tapedeck::report::Timing;
use tapedeck::shard::Shard;

use crate::dir::{Written, pretty, write, write_sweep_dir};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::point::PointSummary;
use crate::run::{FORMAT, SweepCard, point_dir};

/// A shard's own file in its partial sweep directory.
pub const SHARD_FILE: &str = "sweep-shard.json";
/// The sweep card's file.
pub const CARD_FILE: &str = "sweep.json";

/// `sweep-shard.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardFile {
    pub format: u32,
    pub shard: Shard,
    /// [`SweepCard::work`] of the whole sweep.
    pub work: String,
    pub timing: Timing,
    /// The shard's points, in index order.
    pub points: Vec<PointSummary>,
}

/// Makes `out` an empty directory to write a sweep into: refuses a directory that holds
/// something other than a sweep (or a sweep shard), replaces a sweep.
pub fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .next()
            .is_none();
        let sweep = out.join(CARD_FILE).is_file();
        if !empty && !sweep {
            return Err(Error::Corrupt {
                path: out.to_path_buf(),
                message: "exists and is not a sweep directory: give another --out".into(),
            });
        }
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

/// Writes a shard's files (its points' directories are already in `out`).
pub fn write_shard(
    out: &Path,
    card: &SweepCard,
    shard: Shard,
    points: &[PointSummary],
    timing: &Timing,
) -> Result<()> {
    write(out, CARD_FILE, &pretty(card))?;
    let file = ShardFile {
        format: FORMAT,
        shard,
        work: card.work(),
        timing: timing.clone(),
        points: points.to_vec(),
    };
    write(out, SHARD_FILE, &pretty(&file))
}

fn refuse(reason: impl Into<String>) -> Error {
    Error::Merge {
        reason: reason.into(),
    }
}

struct Loaded {
    dir: PathBuf,
    card: SweepCard,
    file: ShardFile,
}

fn load(dir: &Path) -> Result<Loaded> {
    let d = dir.display();
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| {
            refuse(format!(
                "{d} is not a sweep shard's directory: reading {name}: {e} (was it run with `tapedeck sweep --shard`?)"
            ))
        })
    };
    let card: SweepCard = serde_json::from_slice(&read(CARD_FILE)?)
        .map_err(|e| refuse(format!("{d}/{CARD_FILE} is not a sweep card: {e}")))?;
    let file: ShardFile = serde_json::from_slice(&read(SHARD_FILE)?)
        .map_err(|e| refuse(format!("{d}/{SHARD_FILE}: {e}")))?;
    if file.format != FORMAT {
        return Err(refuse(format!(
            "{d}/{SHARD_FILE} is of format {}, this tapedeck merges format {FORMAT}",
            file.format
        )));
    }
    if file.work != card.work() {
        return Err(refuse(format!(
            "{d}: its work id {} is not its card's ({}): the card was edited or written by another version",
            file.work,
            card.work()
        )));
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        card,
        file,
    })
}

fn check(mut shards: Vec<Loaded>) -> Result<Vec<Loaded>> {
    let first = shards
        .first()
        .ok_or_else(|| refuse("no run directories given"))?;
    let (count, work) = (first.file.shard.count, first.file.work.clone());
    for s in &shards[1..] {
        if s.file.work != work {
            return Err(refuse(format!(
                "{} and {} are shards of different sweeps: their sweep.json differ",
                first.dir.display(),
                s.dir.display()
            )));
        }
        if s.file.shard.count != count {
            return Err(refuse(format!(
                "{} is shard {} but {} is shard {}: one sweep has one shard count",
                s.dir.display(),
                s.file.shard,
                first.dir.display(),
                first.file.shard
            )));
        }
    }
    shards.sort_by_key(|s| s.file.shard.index);
    let set: Vec<_> = shards
        .iter()
        .map(|s| (s.file.shard, s.dir.as_path()))
        .collect();
    tapedeck::shard::whole_set(&set, count).map_err(refuse)?;
    let mut owner: BTreeMap<u32, &Path> = BTreeMap::new();
    for s in &shards {
        for p in &s.file.points {
            if !s.file.shard.takes_point(p.point as usize) {
                return Err(refuse(format!(
                    "{}: point {} is not shard {}'s",
                    s.dir.display(),
                    p.point,
                    s.file.shard
                )));
            }
            if let Some(other) = owner.insert(p.point, &s.dir) {
                return Err(refuse(format!(
                    "point {} is in both {} and {}",
                    p.point,
                    other.display(),
                    s.dir.display()
                )));
            }
        }
    }
    let want = shards[0].card.points.len();
    if owner.len() != want {
        let absent: Vec<String> = (0..want as u32)
            .filter(|i| !owner.contains_key(i))
            .take(10)
            .map(|i| i.to_string())
            .collect();
        return Err(refuse(format!(
            "the shards hold {} of the sweep's {want} points: missing {} (did a shard fail?)",
            owner.len(),
            absent.join(", ")
        )));
    }
    Ok(shards)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for e in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let e = e.map_err(|e| Error::io(from, e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

/// What a merge wrote.
#[derive(Debug)]
pub struct Merged {
    pub shards: u32,
    pub points: Vec<PointSummary>,
    pub grid: Grid,
    pub written: Written,
}

/// Merges the sweep shards' directories `dirs` into the sweep directory `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged> {
    for d in dirs {
        if out.exists() && d.canonicalize().ok() == out.canonicalize().ok() {
            return Err(refuse(format!(
                "--out {} is one of the shards: write the merged sweep elsewhere",
                out.display()
            )));
        }
    }
    let shards = check(dirs.iter().map(|d| load(d)).collect::<Result<Vec<_>>>()?)?;
    prepare_out(out)?;
    let card = shards[0].card.clone();
    let total = card.points.len();
    let timing = Timing::merged(shards.iter().map(|s| &s.file.timing));
    let count = shards[0].file.shard.count;
    let mut points = Vec::with_capacity(total);
    for s in shards {
        for p in &s.file.points {
            let i = p.point as usize;
            copy_dir(&point_dir(&s.dir, i, total), &point_dir(out, i, total))?;
        }
        points.extend(s.file.points);
    }
    points.sort_by_key(|p| p.point);
    let grid = Grid::of_points(
        &card.grid,
        points.iter().map(|p| p.params.clone()).collect(),
    )?;
    let written = write_sweep_dir(out, &card, &grid, &points, &timing)?;
    Ok(Merged {
        shards: count,
        points,
        grid,
        written,
    })
}
