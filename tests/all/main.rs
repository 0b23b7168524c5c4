//! Workspace integration tests: one binary, one module per area. Guests are built from this
//! repository's sources by the `tapedeck-test-guests` build script.

mod backtest;
mod bad_input;
mod binance;
mod binance_input;
mod binance_resume;
mod cli;
mod clickhouse;
mod conformance;
mod deploy;
mod feed;
mod filestore;
mod index;
mod langs;
mod layout;
mod live;
mod parity;
mod postgres;
mod projectors;
mod reconcile;
mod record;
mod regress;
mod replay;
mod rerun;
mod runtime;
mod sdk;
mod shard;
mod snapshots;
mod sweep;
mod tutorial;
mod venue;
mod venue_hft;
mod warmup;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tapedeck::codec::{EventBatchWriter, EventHeader, Payload};
use tapedeck::runtime::{Module, Runtime, RuntimeConfig};

/// A running process whose first stdout line says where it listens; killed when dropped.
pub struct Proc {
    child: std::process::Child,
    first_line: String,
}

impl Proc {
    pub fn start(args: &[&str]) -> Proc {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tapedeck"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        assert!(!first_line.is_empty(), "tapedeck {args:?} said nothing");
        Proc { child, first_line }
    }

    /// The address after `prefix` in the first line.
    pub fn addr(&self, prefix: &str) -> std::net::SocketAddr {
        let at = self
            .first_line
            .split_once(prefix)
            .unwrap_or_else(|| panic!("no {prefix:?} in {:?}", self.first_line))
            .1;
        let end = at.find(|c: char| c == '/' || c == ',' || c.is_whitespace());
        at[..end.unwrap_or(at.len())].parse().unwrap()
    }

    /// SIGTERM, and the exit status.
    pub fn term(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(kill.unwrap().success());
        self.child.wait().unwrap()
    }

    /// SIGTERM, expecting a clean exit.
    pub fn stop(self) {
        assert!(self.term().success());
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One runtime per test process (each engine reserves address space for its pool), with its
/// own compile cache so tests do not touch the user's.
pub fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let cache =
            std::env::temp_dir().join(format!("tapedeck-test-cache-{}", std::process::id()));
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache),
            memory_limit: 64 << 20,
            max_instances: 64,
            fuel_per_event: 100_000,
            ..RuntimeConfig::default()
        })
        .expect("runtime")
    })
}

pub fn load(path: &str) -> Module {
    rt().load(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Packs `(instrument, payload)` pairs as one stream's events with seqs from `first_seq`.
pub fn batch(first_seq: u64, events: &[(u32, Payload<'_>)]) -> Vec<u8> {
    let mut w = EventBatchWriter::new(Vec::new());
    for (i, (instrument, p)) in events.iter().enumerate() {
        let seq = first_seq + i as u64;
        let h = EventHeader {
            stream: 1,
            instrument: *instrument,
            seq,
            time_ns: seq as i64 * 1000,
            px_scale: 2,
            qty_scale: 3,
        };
        w.push(&h, p);
    }
    w.finish()
}

/// Where the shared data lives: `$TAPEDECK_SHARED_DIR`, else the `shared/` folder beside the
/// repository (`../shared` of a clone in this environment).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("TAPEDECK_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// `data/<rel>` of the shared folder, or `None` after saying why the calling test skips: the
/// shared data (a real Binance capture from the hftbacktest project's examples, MIT) is not
/// part of a clone. The line goes straight to the process's stderr, past the test harness's
/// capture, so a run without the data shows each test that skipped.
#[track_caller]
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = shared_dir().join("data").join(rel);
    if p.is_file() {
        return Some(p);
    }
    let caller = std::panic::Location::caller();
    let line = format!(
        "skipping: ../shared/data/{rel} not found (this capture comes from the hftbacktest \
         project's examples, MIT, and is not part of a clone; looked at {}, set \
         TAPEDECK_SHARED_DIR to use another folder) [{}:{}]\n",
        p.display(),
        caller.file(),
        caller.line(),
    );
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// The committed fixture store.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/store")
}

/// The fixture store as a store URI argument.
pub fn fixtures_uri() -> String {
    fixtures().display().to_string()
}

/// A fresh (removed if present) temporary path, named after the calling test module and
/// `name`, so parallel tests never share one.
#[track_caller]
pub fn tmp(name: &str) -> PathBuf {
    let module = Path::new(std::panic::Location::caller().file())
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let d = std::env::temp_dir().join(format!("tapedeck-{module}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the `tapedeck` binary, with a compile cache of its own.
pub fn tapedeck(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .args(args)
        .env(
            "TAPEDECK_CACHE_DIR",
            std::env::temp_dir().join("tapedeck-cli-cache"),
        )
        .output()
        .unwrap()
}

/// Asserts two run directories hold the same bytes in `files` and the same `summary.json` apart
/// from its wall-clock `timing`.
pub fn assert_same_run_dirs(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let summary = |d: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("timing");
        v
    };
    assert_eq!(summary(a), summary(b));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA of our own (`DIR/ca.pem`) and a certificate for 127.0.0.1 signed by it
/// (`DIR/leaf.pem`, key `DIR/leaf.key`).
pub fn local_ca(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let days = ["-days", "2"];
    let ca = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
    ];
    openssl(
        dir,
        &[
            &ca[..],
            &["-out", "ca.pem"],
            &days,
            &["-subj", "/CN=tapedeck test CA"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let sign = [
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
    ];
    openssl(
        dir,
        &[
            &sign[..],
            &["-CAcreateserial", "-out", "leaf.pem"],
            &days,
            &["-extfile", "leaf.ext"],
        ]
        .concat(),
    );
}
