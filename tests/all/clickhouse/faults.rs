//! The ClickHouse store when its server dies: mid-append (nothing partial visible after a
//! restart, the retry stores once) and mid-replay (an error, never a short replay). Each test
//! starts a private server (`scripts/ch.sh` with its own directory and ports) and kills it.

use std::path::{Path, PathBuf};

use tapedeck::store::clickhouse::ChStore;
use tapedeck::store::{EventSource, SeqRange};
use tapedeck_test_guests as guests;

use super::{count, db, quotes, read_all, records, server};
use crate::tapedeck;

/// A server of a test's own, for tests that stop it: `scripts/ch.sh` with its own directory
/// and ports. Stopped and removed on drop.
struct PrivateServer {
    dir: PathBuf,
    http: u16,
    tcp: u16,
}

impl PrivateServer {
    fn start(name: &str, http: u16) -> Self {
        let s = PrivateServer {
            dir: std::env::temp_dir().join(format!("tapedeck-ch-{name}-{}", std::process::id())),
            http,
            tcp: http + 1000,
        };
        let _ = std::fs::remove_dir_all(&s.dir);
        s.script("start");
        s
    }

    fn script(&self, cmd: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ch.sh");
        let out = std::process::Command::new(script)
            .arg(cmd)
            .env("TAPEDECK_CH_DIR", &self.dir)
            .env("TAPEDECK_CH_HTTP_PORT", self.http.to_string())
            .env("TAPEDECK_CH_TCP_PORT", self.tcp.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ch.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("clickhouse://127.0.0.1:{}/default", self.http)
    }

    /// Kills the server (SIGKILL: no chance to finish anything) and waits until it is gone.
    fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("server.pid")).unwrap();
        let pid = pid.trim();
        std::process::Command::new("kill")
            .args(["-9", pid])
            .status()
            .unwrap();
        while Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.script("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_server_killed_mid_append_shows_nothing_partial_and_the_retry_stores_once() {
    if server().is_none() {
        return;
    }
    let srv = PrivateServer::start("append", 18311);
    let url = db(&srv.url(), "fault");
    let head = quotes("md:f", 1, 1000, 100);
    let big = quotes("md:f", 1001, 400_000, 100);
    {
        let store = ChStore::connect(&url).unwrap();
        store.append(&head).unwrap();
        // Kill the server while the typed tables are being written: `events` is in, the
        // commit is not.
        let killer = std::thread::spawn({
            let (url, pid) = (url.clone(), srv.dir.join("server.pid"));
            move || {
                let watch = ChStore::connect(&url).unwrap();
                let t = std::time::Instant::now();
                while t.elapsed().as_secs() < 120 {
                    let busy = count(
                        &watch,
                        "SELECT count() FROM system.processes \
                         WHERE query LIKE 'INSERT INTO market_data%'",
                    );
                    if busy > 0 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                let pid = std::fs::read_to_string(pid).unwrap();
                std::process::Command::new("kill")
                    .args(["-9", pid.trim()])
                    .status()
                    .unwrap();
            }
        });
        let r = store.append(&big);
        killer.join().unwrap();
        assert!(
            r.is_err(),
            "the append finished before the server was killed"
        );
    }
    srv.kill();
    srv.script("start");
    // Nothing of the failed append is visible, though some of its rows are there.
    let store = ChStore::connect(&url).unwrap().with_lease_secs(2);
    assert!(count(&store, "SELECT count() FROM events") > 1000);
    assert_eq!(read_all(&store, "md:f"), head);
    assert_eq!(store.streams().unwrap()[0].last_seq, 1000);
    // The retry stores it, once.
    let r = store.append(&big).unwrap();
    assert_eq!((r.appended(), r.duplicates()), (400_000, 0));
    assert_eq!(records(&store, "md:f", SeqRange::ALL).len(), 401_000);
    assert_eq!(count(&store, "SELECT count() FROM events"), 401_000);
    assert_eq!(count(&store, "SELECT count() FROM market_data"), 401_000);
    assert_eq!(
        count(
            &store,
            "SELECT sum(last_seq - first_seq + 1) FROM event_runs"
        ),
        401_000
    );
    let again = store.append(&big).unwrap();
    assert_eq!((again.appended(), again.duplicates()), (0, 400_000));
}

#[test]
fn a_server_killed_mid_replay_is_an_error_not_a_short_replay() {
    if server().is_none() {
        return;
    }
    let srv = PrivateServer::start("replay", 18312);
    let url = db(&srv.url(), "fault");
    let store = ChStore::connect(&url).unwrap();
    for from in (1..400_000).step_by(100_000) {
        store
            .append(&quotes("md:g", from as u64, 100_000, 100))
            .unwrap();
    }
    let mut seen = 0u64;
    let r = store.read_records("md:g", SeqRange::ALL, &mut |_, _, _| {
        seen += 1;
        if seen == 1000 {
            srv.kill();
        }
        if seen.is_multiple_of(1000) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    });
    let e = r.expect_err("a replay whose server died mid-result must fail");
    assert!(seen < 400_000, "read {seen} records");
    eprintln!("mid-replay: {e}");
    // And through the CLI, against the dead server: exit 2, naming the store.
    let o = tapedeck(&["replay", "--store", &url, "--projector", guests::POSITIONS]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&url));
}
