//! Stream write locks: one table per locked stream, `lock_<hash>`, created to take the lock and
//! dropped to release it. `CREATE TABLE` of an existing name fails atomically on one server,
//! so at most one writer holds a stream's lock. The owner is the table's column default (one
//! statement writes both), read back through `system.columns`; age and server uptime come from
//! the server's own clock, so no client clock decides anything.
//!
//! A stale lock (older than the lease, or than the server's uptime: its holder's connection died
//! with the server, or held by a process of this machine that is gone) is broken by renaming it to `<lock>_dead_<owner>`: two breakers of the same
//! stale lock cannot both succeed, and a breaker that finds it renamed a fresh lock (the stale
//! one was released and retaken in between) puts it back. Tombstones are kept (they are rare:
//! one per crashed writer) so a late breaker's rename fails instead of taking a fresh lock.
//!
//! A lock also names its holder's process (`holder`: boot id, pid namespace, pid and the
//! process's start time, all from `/proc`), so a writer restarted on the same machine after a
//! crash (a recorder killed with SIGKILL) does not wait out the lease of its dead predecessor:
//! a holder of this boot and pid namespace whose pid is gone, or now names a process started
//! at another time, is dead. A holder elsewhere (another machine or container, or a lock
//! without `holder`) is judged by the lease alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ChStore;
use super::connect::{exec, fetch, scalar};
use super::decode::Cur;
use crate::error::{Error, Result};

/// A held stream lock; its owner id is also the `append_id` of what the holder writes.
#[derive(Debug)]
pub(super) struct Lock {
    pub(super) table: String,
    pub(super) owner: String,
}

/// What a writer that finds a stream locked reads of the lock.
struct LockState {
    owner: String,
    /// The holder's process ([`this_process`] of the writer that took it).
    process: Option<String>,
    /// Seconds since it was taken, and since the server started (server clock).
    age: u64,
    uptime: u64,
}

/// A fresh owner id: unique across processes (pid, start time) and within one (a counter);
/// fixed-width (`rows::APPEND_ID_SLOT`), as it is patched into encoded rows.
fn new_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        // Only for uniqueness of ids, never for ordering or reports.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!(
        "w{:010}_{:016x}_{:012}",
        std::process::id(),
        *start as u64,
        NEXT.fetch_add(1, Ordering::Relaxed) % 1_000_000_000_000
    )
}

/// This process as a lock's `holder` names it: `boot/pidns/pid/start` (None where `/proc`
/// cannot tell, e.g. not Linux: such locks are judged by the lease).
fn this_process() -> Option<&'static str> {
    static ME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ME.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let pid = std::process::id();
        let id = format!(
            "{}/{}/{pid}/{}",
            boot.trim(),
            ns.display(),
            start_time(pid)?
        );
        // Quoted into SQL as a column default: only what these sources contain is let through.
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/:[]".contains(&b))
            .then_some(id)
    })
    .as_deref()
}

/// When process `pid` started (clock ticks since boot, `/proc/PID/stat` field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// (machine and pid namespace, pid, start time) of a holder id.
fn parse_holder(id: &str) -> Option<(&str, u32, u64)> {
    let (place, start) = id.rsplit_once('/')?;
    let (place, pid) = place.rsplit_once('/')?;
    Some((place, pid.parse().ok()?, start.parse().ok()?))
}

/// Whether `holder` (another lock's [`this_process`]) is a process of this machine and pid
/// namespace that has exited (its pid is gone, or names a process started at another time).
fn holder_is_gone(holder: &str) -> bool {
    let here = this_process().and_then(parse_holder);
    match (here, parse_holder(holder)) {
        (Some((here, _, _)), Some((place, pid, start))) => {
            place == here && start_time(pid) != Some(start)
        }
        _ => false,
    }
}

/// The lock table of `stream`.
pub fn lock_table(stream: &str) -> String {
    let d = Sha256::digest(stream.as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("lock_{hex}")
}

/// A lock table dropped between a system table's listing and the read of its details.
fn dropped_meanwhile(e: &Error) -> bool {
    let m = e.to_string();
    m.contains("Code: 60,") || m.contains("doesn't exist")
}

fn is_taken(e: &Error) -> bool {
    let m = e.to_string();
    m.contains("already exists") || m.contains("right now")
}

impl ChStore {
    /// Takes `stream`'s lock, waiting while another writer holds it and breaking it once stale.
    pub(super) async fn lock(&self, stream: &str) -> Result<Lock> {
        let table = lock_table(stream);
        let owner = new_owner();
        let holder = this_process().map_or(String::new(), |me| {
            format!(", holder String DEFAULT '{me}'")
        });
        let create = format!(
            "CREATE TABLE {table} (owner String DEFAULT '{owner}'{holder}) ENGINE = Memory"
        );
        let mut pause = Duration::from_millis(1);
        loop {
            match exec(&self.client, &create).await {
                Ok(()) => return Ok(Lock { table, owner }),
                Err(e) if is_taken(&e) => {}
                Err(e) => return Err(e),
            }
            match self.lock_state(&table).await? {
                // Released in between: try again at once.
                None => continue,
                Some(l)
                    if l.age > self.lease_secs
                        || l.age > l.uptime
                        || l.process.as_deref().is_some_and(holder_is_gone) =>
                {
                    self.break_lock(&table, &l.owner).await?;
                    continue;
                }
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The owner of lock `table`, if it exists.
    pub(super) async fn lock_owner(&self, table: &str) -> Result<Option<String>> {
        Ok(self.lock_columns(table).await?.map(|(owner, _)| owner))
    }

    /// The owner and holder process of lock `table` (their column defaults), if it exists.
    async fn lock_columns(&self, table: &str) -> Result<Option<(String, Option<String>)>> {
        let b = fetch(
            self.client
                .query(
                    "SELECT name, default_expression FROM system.columns \
                     WHERE database = currentDatabase() AND table = ? ORDER BY name DESC",
                )
                .bind(table),
            "reading a stream lock",
        )
        .await;
        let b = match b {
            Ok(b) => b,
            // `system.columns` lists the table, then it is dropped (released) before its
            // columns are read: 18.16 says the table does not exist (code 60).
            Err(e) if dropped_meanwhile(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (mut owner, mut holder) = (None, None);
        let mut c = Cur::new(&b);
        while let (Some(name), Some(value)) = (c.str(), c.str()) {
            let value = value.trim_matches('\'').to_string();
            match name {
                "owner" => owner = Some(value),
                "holder" => holder = Some(value),
                _ => {}
            }
        }
        Ok(owner.map(|o| (o, holder)))
    }

    /// Lock `table`'s owner, age and holder process, and the server's uptime, if it exists.
    async fn lock_state(&self, table: &str) -> Result<Option<LockState>> {
        let Some((owner, process)) = self.lock_columns(table).await? else {
            return Ok(None);
        };
        let b = fetch(
            self.client
                .query(
                    "SELECT toUInt64(greatest(toInt64(now()) - toInt64(metadata_modification_time), 0)), \
                     toUInt64(uptime()) FROM system.tables \
                     WHERE database = currentDatabase() AND name = ?",
                )
                .bind(table),
            "reading a stream lock",
        )
        .await?;
        let mut c = Cur::new(&b);
        Ok(c.u64().zip(c.u64()).map(|(age, uptime)| LockState {
            owner,
            process,
            age,
            uptime,
        }))
    }

    /// Breaks the stale lock `table` held by `holder` (see the module doc).
    async fn break_lock(&self, table: &str, holder: &str) -> Result<()> {
        let tomb = format!("{table}_dead_{holder}");
        if exec(&self.client, &format!("RENAME TABLE {table} TO {tomb}"))
            .await
            .is_err()
        {
            // Someone else broke or released it first.
            return Ok(());
        }
        if self.lock_owner(&tomb).await?.as_deref() != Some(holder) {
            // A fresh lock was renamed: put it back (fails only if yet another writer took
            // the name meanwhile, which then holds it).
            let _ = exec(&self.client, &format!("RENAME TABLE {tomb} TO {table}")).await;
        }
        Ok(())
    }

    /// Whether `lock` is still held by its owner.
    pub(super) async fn still_held(&self, lock: &Lock) -> Result<bool> {
        Ok(self.lock_owner(&lock.table).await?.as_deref() == Some(lock.owner.as_str()))
    }

    /// Releases `lock` (if it is still ours).
    pub(super) async fn unlock(&self, lock: &Lock) -> Result<()> {
        if self.still_held(lock).await? {
            exec(
                &self.client,
                &format!("DROP TABLE IF EXISTS {}", lock.table),
            )
            .await?;
        }
        Ok(())
    }

    /// Rows of `stream` past `last` in `events` (an append that failed left them).
    pub(super) async fn rows_past(&self, stream: &str, last: u64) -> Result<u64> {
        scalar(
            self.client
                .query("SELECT count() FROM events WHERE stream_key = ? AND seq > ?")
                .bind(stream)
                .bind(last),
            "looking for a failed append's rows",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_of_this_machine_is_gone_once_its_process_is() {
        let Some(me) = this_process() else {
            // Not Linux: locks are judged by their lease alone.
            return;
        };
        assert!(!holder_is_gone(me), "this process is alive: {me}");
        let (place, pid, start) = parse_holder(me).unwrap();
        // The same pid started at another time (the pid was reused), a pid not running, and a
        // holder of another machine (judged by the lease, so not gone).
        assert!(holder_is_gone(&format!("{place}/{pid}/{}", start + 1)));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        assert!(holder_is_gone(&format!("{place}/{dead}/{start}")));
        assert!(!holder_is_gone(&format!(
            "other-boot/pid:[1]/{dead}/{start}"
        )));
        assert!(!holder_is_gone("w_dead"));
    }

    #[test]
    fn lock_names_and_owners_are_sql_safe_and_distinct() {
        let a = lock_table("md:x'; DROP");
        assert!(a.starts_with("lock_") && a.len() == 5 + 32);
        assert!(a[5..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, lock_table("md:y"));
        let (o1, o2) = (new_owner(), new_owner());
        assert_ne!(o1, o2);
        assert_eq!(o1.len(), super::super::rows::APPEND_ID_SLOT.len());
        assert!(o1.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
}
