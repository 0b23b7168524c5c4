//! The `tapedeck` command line: a thin dispatcher over the library, one module per command.

/// `println!` for a command's output: a reader that went away (`tapedeck streams | head -1`)
/// ends the process quietly with exit 0, as other Unix tools do, instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Replay and backtest harness for trading bots, with strategies and projectors as Wasm
/// components.
#[derive(Parser, Debug)]
#[command(name = "tapedeck", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Build(commands::build::Build),
    New(commands::new::New),
    Bench(commands::bench::Bench),
    Inspect(commands::inspect::Inspect),
    Import(commands::import::Import),
    Streams(commands::streams::Streams),
    Replay(commands::replay::Replay),
    State(commands::replay::State),
    Fixtures(commands::fixtures::Fixtures),
    Regress(commands::regress::Regress),
    Backtest(commands::backtest::Backtest),
    Sweep(commands::sweep::Sweep),
    Reconcile(commands::reconcile::Reconcile),
    Rerun(commands::rerun::Rerun),
    Merge(commands::merge::Merge),
    Index(commands::index::Index),
    Snapshot(commands::snapshot::Snapshot),
    Migrate(commands::postgres::Migrate),
    Partitions(commands::postgres::Partitions),
    Retention(commands::retention::Retention),
    Events(commands::events::Events),
    Copy(commands::copy::Copy),
    Fsck(commands::fsck::Fsck),
    Record(commands::record::Record),
    Feed(commands::feed::Feed),
    Live(commands::live::Live),
    Ctl(commands::live::Ctl),
}

/// Writes one line to stdout; see `outln!`.
fn write_out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(2);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(c) => c.run(),
        Command::New(c) => c.run(),
        Command::Bench(c) => c.run(),
        Command::Inspect(c) => c.run(),
        Command::Import(c) => c.run(),
        Command::Streams(c) => c.run(),
        Command::Replay(c) => c.run(),
        Command::State(c) => c.run(),
        Command::Fixtures(c) => c.run(),
        Command::Regress(c) => c.run(),
        Command::Backtest(c) => c.run(),
        Command::Sweep(c) => c.run(),
        Command::Reconcile(c) => c.run(),
        Command::Rerun(c) => c.run(),
        Command::Merge(c) => c.run(),
        Command::Index(c) => c.run(),
        Command::Snapshot(c) => c.run(),
        Command::Migrate(c) => c.run(),
        Command::Partitions(c) => c.run(),
        Command::Retention(c) => c.run(),
        Command::Events(c) => c.run(),
        Command::Copy(c) => c.run(),
        Command::Fsck(c) => c.run(),
        Command::Record(c) => c.run(),
        Command::Feed(c) => c.run(),
        Command::Live(c) => c.run(),
        Command::Ctl(c) => c.run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
