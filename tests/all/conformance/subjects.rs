//! The stores under test: each a [`Subject`] (the store, how to open it again from where it
//! lives, how to read back what it quarantined, and which of the seam's documented options it
//! takes) and an [`Opener`] that makes a fresh, empty one for a case.
//!
//! A new store is an opener here and one name in the `conformance!` list. An opener returns
//! `None` when its server is not configured, after saying so on stderr: the PostgreSQL variants
//! skip without `TAPEDECK_PG_URL`, the ClickHouse ones without `TAPEDECK_CH_URL` (CI sets both:
//! `scripts/test.sh` starts the servers). Every case gets its own directory or database, named
//! after the case.

use std::path::PathBuf;

use serde_json::Value;
use sqlx::Row;
use tapedeck::store::clickhouse::{ChStore, migrate, recreate_database};
use tapedeck::store::{FileStore, FileStoreOptions, MemoryStore, PgStore, Store, index};

/// Makes a fresh, empty store for the case named by the argument; `None` to skip.
pub type Opener = fn(&str) -> Option<Box<dyn Subject>>;

/// A store under test, as the cases see it.
pub trait Subject {
    fn store(&mut self) -> &mut dyn Store;

    /// Drops the store and opens it again from where it lives: what another process sees.
    /// (Memory: nothing to do. The indexed file store rebuilds its index first, so its reads
    /// after a reopen go through the index.)
    fn reopen(&mut self);

    /// The records `quarantine(source, ..)` set aside, oldest first, read back from `place`
    /// (what `quarantine` returned) without going through the store's own API.
    fn quarantined(&mut self, place: &str, source: &str) -> Vec<Value>;

    /// Whether `append` recognises an event it holds already by its idempotency key, skipping
    /// it and reporting it as a duplicate instead of refusing the batch: the seam's documented
    /// option for stores with keys (PostgreSQL).
    fn idempotency_keys(&self) -> bool {
        false
    }

    /// Whether `put_snapshot` refuses a snapshot at seq 0 or past the stream's end.
    /// PostgreSQL does; the file and memory stores do not check (the trait does not ask them
    /// to): the snapshots case pins both behaviours.
    fn refuses_snapshots_past_the_end(&self) -> bool {
        false
    }

    /// Removes what the case left on disk (called only when it passed).
    fn cleanup(&mut self) {}
}

// ---- memory -------------------------------------------------------------------------------

struct Memory(MemoryStore);

pub fn memory(_case: &str) -> Option<Box<dyn Subject>> {
    Some(Box::new(Memory(MemoryStore::new())))
}

impl Subject for Memory {
    fn store(&mut self) -> &mut dyn Store {
        &mut self.0
    }

    fn reopen(&mut self) {}

    fn quarantined(&mut self, place: &str, source: &str) -> Vec<Value> {
        assert_eq!(place, "memory");
        self.0
            .quarantined
            .iter()
            .filter(|(s, _)| s == source)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

// ---- file ---------------------------------------------------------------------------------

struct File {
    root: PathBuf,
    store: FileStore,
    /// Rebuild the Parquet index on reopen (reads then use it).
    indexed: bool,
}

fn open_file(case: &str, indexed: bool) -> Option<Box<dyn Subject>> {
    let root = crate::tmp(&format!("{case}-{}", if indexed { "ix" } else { "log" }));
    // Small parts, so a case's events span several part files per day.
    let opts = FileStoreOptions {
        max_part_bytes: 2_000,
        ..FileStoreOptions::default()
    };
    let store = FileStore::create(&root, opts).expect("creating the file store");
    Some(Box::new(File {
        root,
        store,
        indexed,
    }))
}

pub fn file(case: &str) -> Option<Box<dyn Subject>> {
    open_file(case, false)
}

pub fn file_indexed(case: &str) -> Option<Box<dyn Subject>> {
    open_file(case, true)
}

impl Subject for File {
    fn store(&mut self) -> &mut dyn Store {
        &mut self.store
    }

    fn reopen(&mut self) {
        if self.indexed {
            index::rebuild(&self.root, None).expect("rebuilding the index");
        }
        self.store = FileStore::open(&self.root).expect("reopening the file store");
        if self.indexed {
            assert!(
                self.store.fresh_index().unwrap().is_some(),
                "the rebuilt index matches the log"
            );
        }
    }

    fn quarantined(&mut self, place: &str, source: &str) -> Vec<Value> {
        let path = PathBuf::from(place);
        assert!(
            path.starts_with(self.root.join("quarantine")),
            "{place} is under quarantine/ of {}",
            self.root.display()
        );
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(source),
            "{place} is named after {source} (the cases' sources need no escaping)"
        );
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn cleanup(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ---- PostgreSQL ---------------------------------------------------------------------------

struct Postgres {
    url: String,
    store: PgStore,
}

/// A fresh, migrated database `td_conf_<case>` on the server in `$TAPEDECK_PG_URL`.
pub fn postgres(case: &str) -> Option<Box<dyn Subject>> {
    if std::env::var_os("TAPEDECK_PG_URL").is_none() {
        eprintln!(
            "skipping the PostgreSQL variant of {case}: TAPEDECK_PG_URL is unset \
             (export TAPEDECK_PG_URL=$(./scripts/pg.sh start))"
        );
        return None;
    }
    let url = crate::postgres::db(&format!("conf_{case}"));
    let store = PgStore::connect(&url).expect("connecting to the test database");
    Some(Box::new(Postgres { url, store }))
}

impl Subject for Postgres {
    fn store(&mut self) -> &mut dyn Store {
        &mut self.store
    }

    fn reopen(&mut self) {
        self.store = PgStore::connect(&self.url).expect("reconnecting");
    }

    fn quarantined(&mut self, place: &str, source: &str) -> Vec<Value> {
        assert!(
            place.starts_with("table quarantine of ") && place.contains(source),
            "{place}"
        );
        let rows = crate::postgres::block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query("SELECT record::text FROM quarantine WHERE source = $1 ORDER BY id")
                .bind(source)
                .fetch_all(&mut c)
                .await
        })
        .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(r.get::<&str, _>(0)).unwrap())
            .collect()
    }

    fn idempotency_keys(&self) -> bool {
        true
    }

    fn refuses_snapshots_past_the_end(&self) -> bool {
        true
    }
}

// ---- ClickHouse ---------------------------------------------------------------------------

struct ClickHouse {
    url: String,
    store: ChStore,
}

/// A fresh, migrated database `tdch_conf_<case>` on the server in `$TAPEDECK_CH_URL`.
pub fn clickhouse(case: &str) -> Option<Box<dyn Subject>> {
    let Some(server) = std::env::var("TAPEDECK_CH_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "skipping the ClickHouse variant of {case}: TAPEDECK_CH_URL is unset \
             (export TAPEDECK_CH_URL=$(./scripts/ch.sh start))"
        );
        return None;
    };
    let url = recreate_database(&server, &format!("tdch_conf_{case}"))
        .expect("creating the test database");
    migrate(&url).expect("migrating the test database");
    let store = ChStore::connect(&url).expect("connecting to the test database");
    Some(Box::new(ClickHouse { url, store }))
}

impl Subject for ClickHouse {
    fn store(&mut self) -> &mut dyn Store {
        &mut self.store
    }

    fn reopen(&mut self) {
        self.store = ChStore::connect(&self.url).expect("reconnecting");
    }

    fn quarantined(&mut self, place: &str, source: &str) -> Vec<Value> {
        assert!(
            place.starts_with("table quarantine of ") && place.contains(source),
            "{place}"
        );
        // A connection of its own: SQL on the table, not the store's API.
        let own = ChStore::connect(&self.url).expect("connecting");
        let text = own
            .block_on(
                own.client()
                    .query("SELECT record FROM quarantine WHERE source = ? ORDER BY received_ns")
                    .bind(source)
                    .fetch_bytes("JSONEachRow")
                    .unwrap()
                    .collect(),
            )
            .unwrap();
        String::from_utf8(text.to_vec())
            .unwrap()
            .lines()
            .map(|l| {
                let row: Value = serde_json::from_str(l).unwrap();
                serde_json::from_str(row["record"].as_str().unwrap()).unwrap()
            })
            .collect()
    }

    /// Events held already (the same envelope at the same seq) are reported as duplicates.
    fn idempotency_keys(&self) -> bool {
        true
    }

    fn refuses_snapshots_past_the_end(&self) -> bool {
        true
    }
}
