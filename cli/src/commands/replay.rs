//! `tapedeck replay` and `tapedeck state`.

use std::path::PathBuf;
use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::{Context, Result, bail};

use tapedeck::glob::glob_match;
use tapedeck::replay::{Plugin, Point, ReplayOptions, replay};
use tapedeck::store::EventSource;
use tapedeck::time::format_ns;

use super::progress::Progress;
use tapedeck::report::{Stopwatch, describe, load_tolerances, run_card, write_run_dir};
use tapedeck::runtime::{ModuleKind, Runtime, RuntimeConfig};

/// What every run reads and how: store, streams, range, parallelism, batching, tolerances.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Store URI: a file store directory (or file://DIR), or postgres://USER@HOST:PORT/DB.
    #[arg(long)]
    pub store: StoreUri,
    /// Streams to replay (glob with `*` and `?`).
    #[arg(long, default_value = "*")]
    pub streams: String,
    /// Start: a seq, `t:<ns>`, or a UTC time like 2024-08-08T23:55:00Z. Replay starts from the
    /// newest stored snapshot at or before it.
    #[arg(long)]
    pub from: Option<Point>,
    /// End (inclusive), same forms as --from.
    #[arg(long)]
    pub to: Option<Point>,
    /// Streams replayed in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Events per guest call.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Numeric tolerances for projector diffs by path, JSON:
    /// {"numeric": [[".positions.*.avg_price", 1e-9]]}.
    #[arg(long)]
    pub tolerances: Option<PathBuf>,
    /// A module's own budget, by the name it reports: `NAME:key=value,...` with keys `memory`
    /// (bytes, or K/M/G), `fuel-per-event`, `fuel-per-call` (repeatable; a Python or JavaScript
    /// guest may need more than the defaults: 256M, 100000, 1000000000). Part of the run card.
    #[arg(long = "budget", value_name = "NAME:KEY=VALUE,...")]
    pub budgets: Vec<String>,
    /// Run one shard of the work: `I/N` (shard I of N, from 0), or `env` (a Slurm array
    /// task's SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, else a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX with the count in TAPEDECK_SHARDS). Streams go to shards by a hash
    /// of their key. With --out the directory is a partial run (its run card names the shard
    /// and the whole work) for `tapedeck merge`, and the exit code is 0 once it is written:
    /// findings are the merge's verdict.
    #[arg(long, value_name = "I/N|env")]
    pub shard: Option<tapedeck::shard::Shard>,
}

impl RunArgs {
    /// The runtime for `modules` modules: the instance pool holds one instance of each per job
    /// (and a few for loading), so `--jobs` never outgrows it.
    pub fn runtime(&self, modules: usize) -> Result<Runtime> {
        let default = RuntimeConfig::default();
        let needed = self.jobs.max(1).saturating_mul(modules).saturating_add(4);
        let max_instances = u32::try_from(needed)
            .ok()
            .filter(|&n| n <= 100_000)
            .with_context(|| format!("--jobs {} is more than this machine can run", self.jobs))?;
        let mut budgets = std::collections::BTreeMap::new();
        for spec in &self.budgets {
            let (name, b) = tapedeck::runtime::Budget::parse_rule(spec, default.default_budget())
                .map_err(anyhow::Error::msg)?;
            budgets.insert(name, b);
        }
        Ok(Runtime::new(RuntimeConfig {
            max_instances: max_instances.max(default.max_instances),
            budgets,
            ..default
        })?)
    }

    /// Opens the store and builds the options, with a progress line (`what`) over the
    /// selected streams' events; the line goes away when the returned `Progress` is dropped.
    pub fn open(
        &self,
        what: &'static str,
        keep_outputs: bool,
    ) -> Result<(Box<dyn EventSource>, ReplayOptions, Progress)> {
        match (self.from, self.to) {
            (Some(Point::Seq(a)), Some(Point::Seq(b))) if a > b => {
                bail!("--from {a} is after --to {b}: nothing to replay")
            }
            (Some(Point::Time(a)), Some(Point::Time(b))) if a > b => bail!(
                "--from {} is after --to {}: nothing to replay",
                format_ns(a),
                format_ns(b)
            ),
            _ => {}
        }
        let store = self.store.open()?;
        let all = store.streams()?;
        let mut selected: Vec<_> = all
            .iter()
            .filter(|s| glob_match(&self.streams, &s.key))
            .collect();
        if selected.is_empty() {
            bail!(
                "no stream in {} matches --streams {:?} ({} streams; `tapedeck streams --store ...` lists them)",
                store.describe(),
                self.streams,
                all.len()
            );
        }
        if let Some(shard) = self.shard {
            selected.retain(|s| shard.takes_stream(&s.key));
            eprintln!(
                "shard {shard}: {} of the {} streams matching {:?}",
                selected.len(),
                all.iter()
                    .filter(|s| glob_match(&self.streams, &s.key))
                    .count(),
                self.streams
            );
        }
        let total: u64 = selected.iter().map(|s| s.events()).sum();
        let progress = Progress::start(what, total);
        let opts = ReplayOptions {
            streams: self.streams.clone(),
            from: self.from,
            to: self.to,
            jobs: self.jobs,
            batch: self.batch.max(1),
            tolerances: load_tolerances(self.tolerances.as_deref())?,
            keep_outputs,
            progress: Some(progress.counter.clone()),
            check_stored: true,
            shard: self.shard,
            cold_start: None,
        };
        Ok((store, opts, progress))
    }
}

/// Replay strategies and projectors over recorded streams, diffing projector state against
/// every stored snapshot in range. Exit code 0 clean, 1 findings, 2 error.
#[derive(clap::Args, Debug)]
pub struct Replay {
    #[command(flatten)]
    pub run: RunArgs,
    /// A strategy module (repeatable).
    #[arg(long = "strategy")]
    pub strategies: Vec<PathBuf>,
    /// A projector module (repeatable).
    #[arg(long = "projector")]
    pub projectors: Vec<PathBuf>,
    /// Write the run directory here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replay a live session instead (`live:SESSION`, its audit stream): the modules it ran,
    /// switched where it switched them, every order and cancel compared with what the session
    /// recorded in its exec streams. Exit 0 when all are reproduced, 1 naming the first
    /// difference per stream.
    #[arg(long, value_name = "live:SESSION", conflicts_with_all = ["strategies", "projectors", "out", "shard"])]
    pub timeline: Option<String>,
    /// Where the session kept its modules, by sha256 (its live.toml's `live.modules_dir`,
    /// by default `<wal.dir>/../live-modules`).
    #[arg(long, value_name = "DIR", requires = "timeline")]
    pub modules: Option<PathBuf>,
}

/// Load modules, checking each is of the expected kind.
pub fn plugins(rt: &Runtime, paths: &[PathBuf], kind: ModuleKind) -> Result<Vec<Plugin>> {
    paths
        .iter()
        .map(|p| {
            let module = rt
                .load(p)
                .with_context(|| format!("loading {}", p.display()))?;
            if module.kind() != kind {
                bail!(
                    "{} is a {}, given as a {}",
                    p.display(),
                    module.kind().as_str(),
                    kind.as_str()
                );
            }
            Ok(Plugin::new(module, ""))
        })
        .collect()
}

impl Replay {
    pub fn run(self) -> Result<ExitCode> {
        if let Some(t) = &self.timeline {
            return self.live_session(t);
        }
        let clock = Stopwatch::start();
        let rt = self
            .run
            .runtime(self.strategies.len() + self.projectors.len())?;
        let mut all = plugins(&rt, &self.strategies, ModuleKind::Strategy)?;
        all.extend(plugins(&rt, &self.projectors, ModuleKind::Projector)?);
        if all.is_empty() {
            bail!("nothing to replay: give at least one --strategy or --projector");
        }
        let (store, opts, progress) = self.run.open("replay", false)?;
        let report = replay(&rt, store.as_ref(), &all, &opts)?;
        drop(progress);
        for s in &report.streams {
            eprintln!(
                "{}: seq {}..{}, {} events, {} snapshots checked, {} findings",
                s.stream,
                s.start_seq,
                s.last_seq,
                s.events,
                s.snapshots_checked,
                s.findings.len()
            );
        }
        for f in report.findings() {
            outln!("{}", describe(f));
        }
        if let Some(out) = &self.out {
            let card = run_card(&store.describe(), &all, &opts, rt.config())
                .pin_data(report.streams.iter().map(|s| s.pin()).collect());
            let timing = clock.timing(opts.jobs);
            if let Some(shard) = opts.shard {
                tapedeck::report::shard::write_replay_shard(
                    out,
                    &card.for_shard(shard),
                    &report,
                    &timing,
                )?;
                eprintln!("shard {shard}: {} (for `tapedeck merge`)", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            write_run_dir(out, &card, &report, &timing)?;
            eprintln!("report: {}", out.join("report.md").display());
        }
        Ok(if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

impl Replay {
    fn live_session(&self, timeline: &str) -> Result<ExitCode> {
        use tapedeck::live::verify;
        let session = timeline.strip_prefix("live:").with_context(|| {
            format!("--timeline {timeline:?}: want live:SESSION, the session's audit stream")
        })?;
        let modules = self
            .modules
            .clone()
            .context("--timeline needs --modules DIR: where the session kept its modules")?;
        let rt = self.run.runtime(3)?;
        let store = self.run.store.open()?;
        let t = verify::timeline(store.as_ref(), session)?;
        let mut m = verify::Modules::new(&rt, &modules);
        let mut clean = true;
        for s in verify::check(store.as_ref(), &t, &mut m)? {
            if !glob_match(&self.run.streams, &s.stream) {
                continue;
            }
            match &s.first_difference {
                None => outln!(
                    "{}: {} events, {} module switches, {} orders and cancels reproduced",
                    s.stream,
                    s.events,
                    s.switches,
                    s.replayed
                ),
                Some(d) => {
                    clean = false;
                    outln!(
                        "{}: differs ({} replayed, {} recorded); first difference: {d}",
                        s.stream,
                        s.replayed,
                        s.recorded
                    );
                }
            }
        }
        Ok(if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// Print a projector's state for one stream at a point in its history (time travel).
#[derive(clap::Args, Debug)]
pub struct State {
    /// Store URI.
    #[arg(long)]
    pub store: StoreUri,
    /// The projector module.
    #[arg(long)]
    pub projector: PathBuf,
    /// The stream key.
    #[arg(long)]
    pub stream: String,
    /// The point: a seq, `t:<ns>`, or a UTC time [default: the end of the stream].
    #[arg(long)]
    pub at: Option<Point>,
}

impl State {
    pub fn run(self) -> Result<ExitCode> {
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 8,
            ..RuntimeConfig::default()
        })?;
        let all = plugins(
            &rt,
            std::slice::from_ref(&self.projector),
            ModuleKind::Projector,
        )?;
        let store = self.store.open()?;
        if !store.streams()?.iter().any(|s| s.key == self.stream) {
            bail!(
                "no stream {:?} in {} (`tapedeck streams --store ...` lists them)",
                self.stream,
                store.describe()
            );
        }
        // Anchor at the newest snapshot at or before the point, then apply up to it.
        let from = self.at.map(|p| match p {
            Point::Seq(s) => Point::Seq(s + 1),
            t => t,
        });
        let opts = ReplayOptions {
            streams: self.stream.clone(),
            from,
            to: self.at,
            ..ReplayOptions::default()
        };
        let report = replay(&rt, store.as_ref(), &all, &opts)?;
        let s = report.streams.first().context("stream vanished")?;
        if let Some(f) = s
            .findings
            .iter()
            .find(|f| matches!(f, tapedeck::replay::Finding::GuestTrap { .. }))
        {
            bail!("{}", describe(f));
        }
        let state = s
            .final_states
            .values()
            .next()
            .context("the projector produced no state")?;
        outln!("{}", serde_json::to_string_pretty(state)?);
        Ok(ExitCode::SUCCESS)
    }
}
