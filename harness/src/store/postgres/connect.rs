//! Getting to a PostgreSQL store: the embedded migrations, the connection pool and its session
//! settings, the schema checks `connect` makes, `migrate`, `recreate_database` for benches, the
//! event_log partitions, and [`pg`], the one place a sqlx error becomes [`Error::Postgres`].
//!
//! Invariants: every session runs in UTC with custom plans and standard_conforming_strings on
//! (partition pruning and [`super::reads`]' SQL literals rely on them); `connect` refuses a
//! database whose schema is missing, older or newer than [`MIGRATIONS`], saying what to run;
//! partition DDL runs outside append transactions (it locks the parent table).

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::Serialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};
use tapedeck_guest::codec::LAYOUT_VERSION;

use super::PgStore;
use super::rows::month_of;
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::uri::redact;

/// The migrations in `migrations/`, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "event log",
    include_str!("../../../../migrations/0001_event_log.sql"),
)];

/// How long the first connection may take before the store is reported unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `tapedeck_meta` key recording the codec layout of the `packed` column.
const LAYOUT_KEY: &str = "packed_layout";

/// Maps a sqlx error to [`Error::Postgres`] with what was being done.
/// (In a per-row loop, call it lazily, `map_err(|e| pg(..)(e))`: the context is a string.)
pub(super) fn pg(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let context = context.into();
    move |e| Error::Postgres {
        context,
        message: match &e {
            sqlx::Error::Database(d) => match d.code() {
                Some(code) => format!("{} (SQLSTATE {code})", d.message()),
                None => d.message().to_string(),
            },
            other => other.to_string(),
        },
    }
}

/// Drops (if present) and creates database `name` on the server `server_url` names; returns the
/// new database's URL. For benches and demos: it destroys what the database held.
pub fn recreate_database(server_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::BadStoreUri {
            uri: redact(server_url),
            reason: format!("database name {name:?}: use lowercase letters, digits and _"),
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(server_url)
            .await
            .map_err(pg(format!("connecting to {}", redact(server_url))))?;
        for stmt in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
                .execute(&mut c)
                .await
                .map_err(pg(stmt))?;
        }
        Ok::<_, Error>(())
    })?;
    let base = server_url.split('?').next().unwrap_or(server_url);
    let (host, _) = base.rsplit_once('/').ok_or_else(|| Error::BadStoreUri {
        uri: redact(server_url),
        reason: "want postgres://USER@HOST:PORT/DB".into(),
    })?;
    Ok(format!("{host}/{name}"))
}

/// One month of the partition coverage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthCoverage {
    /// `YYYY-MM-01`.
    pub month: String,
    pub partition: String,
    pub present: bool,
}

impl PgStore {
    fn pool(uri: &str) -> Result<(tokio::runtime::Runtime, PgPool)> {
        let bad = |reason: String| Error::BadStoreUri {
            uri: redact(uri),
            reason,
        };
        let opts: PgConnectOptions = uri.parse().map_err(|e| bad(format!("{e}")))?;
        // Partition bounds and months are UTC whatever the server's zone. Custom plans always:
        // a generic plan prunes partitions only at executor start, after locking them all.
        // `literal` relies on standard_conforming_strings (on by default; forced here).
        let opts = opts.options([
            ("timezone", "UTC"),
            ("plan_cache_mode", "force_custom_plan"),
            ("standard_conforming_strings", "on"),
        ]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tapedeck-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        // One connection first, bounded in time, so an unreachable or refusing server is
        // reported with its cause at once (the pool would retry for its whole timeout and then
        // say only "pool timed out").
        rt.block_on(async {
            use sqlx::Connection;
            match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&opts))
                .await
            {
                Ok(Ok(c)) => {
                    let _ = c.close().await;
                    Ok(())
                }
                Ok(Err(e)) => Err(bad(format!("cannot connect: {e}"))),
                Err(_) => Err(bad(format!(
                    "cannot connect: no answer within {} s (is the server up, and is HOST:PORT right?)",
                    CONNECT_TIMEOUT.as_secs()
                ))),
            }
        })?;
        let pool = rt
            .block_on(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(std::time::Duration::from_secs(30))
                    .connect_with(opts),
            )
            .map_err(|e| bad(format!("cannot connect: {e}")))?;
        Ok((rt, pool))
    }

    /// Connects to a migrated store; a database without the schema is an error that says to
    /// run `tapedeck migrate`.
    pub fn connect(uri: &str) -> Result<Self> {
        let (rt, pool) = Self::pool(uri)?;
        let schema: Option<(Option<i64>, Option<String>)> = rt
            .block_on(async {
                let present: bool = sqlx::query_scalar(
                    "SELECT to_regclass('tapedeck_meta') IS NOT NULL
                         AND to_regclass('_sqlx_migrations') IS NOT NULL",
                )
                .fetch_one(&pool)
                .await?;
                if !present {
                    return Ok(None);
                }
                let version =
                    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&pool)
                        .await?;
                let layout = sqlx::query_scalar("SELECT value FROM tapedeck_meta WHERE key = $1")
                    .bind(LAYOUT_KEY)
                    .fetch_optional(&pool)
                    .await?;
                Ok(Some((version, layout)))
            })
            .map_err(pg("reading the schema version"))?;
        let refuse = |reason: String| Error::BadStoreUri {
            uri: redact(uri),
            reason,
        };
        let ours = MIGRATIONS.last().map_or(0, |m| m.0);
        let layout = match schema {
            None => {
                return Err(refuse(format!(
                    "no tapedeck schema in this database; run `tapedeck migrate --store {}`",
                    redact(uri)
                )));
            }
            Some((version, _)) if version.unwrap_or(0) < ours => {
                return Err(refuse(format!(
                    "the schema is at migration {}, this tapedeck needs {ours}; run `tapedeck migrate --store {}`",
                    version.unwrap_or(0),
                    redact(uri)
                )));
            }
            Some((Some(version), _)) if version > ours => {
                return Err(refuse(format!(
                    "the schema is at migration {version}, newer than this tapedeck knows ({ours}); use a newer tapedeck"
                )));
            }
            Some((_, layout)) => layout,
        };
        Ok(PgStore {
            rt,
            pool,
            uri: redact(uri),
            months: Mutex::new(BTreeSet::new()),
            packed_current: layout.as_deref() == Some(&LAYOUT_VERSION.to_string()),
        })
    }

    /// Applies the migrations not yet applied; returns their versions.
    pub fn migrate(uri: &str) -> Result<Vec<i64>> {
        let (rt, pool) = Self::pool(uri)?;
        let migrations = MIGRATIONS
            .iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        rt.block_on(async {
            let before: Vec<i64> = if sqlx::query_scalar::<_, bool>(
                "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .map_err(pg("reading applied migrations"))?
            {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(&pool)
                    .await
                    .map_err(pg("reading applied migrations"))?
            } else {
                Vec::new()
            };
            migrator.run(&pool).await.map_err(|e| Error::Postgres {
                context: "migrating".into(),
                message: e.to_string(),
            })?;
            sqlx::query("INSERT INTO tapedeck_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(LAYOUT_KEY)
                .bind(LAYOUT_VERSION.to_string())
                .execute(&pool)
                .await
                .map_err(pg("recording the codec layout"))?;
            Ok(MIGRATIONS
                .iter()
                .map(|m| m.0)
                .filter(|v| !before.contains(v))
                .collect())
        })
    }

    /// Creates the event_log partitions of this month and the next `months_ahead`; returns
    /// their names.
    pub fn create_partitions(&self, months_ahead: u32) -> Result<Vec<String>> {
        self.rt
            .block_on(
                sqlx::query_scalar("SELECT create_event_log_partitions($1)")
                    .bind(months_ahead as i32)
                    .fetch_all(&self.pool),
            )
            .map_err(pg("creating partitions"))
    }

    /// This month and the next `months_ahead`: which have a partition.
    pub fn partition_coverage(&self, months_ahead: u32) -> Result<Vec<MonthCoverage>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT month::text, partition_name, present FROM check_partition_coverage($1)",
                )
                .bind(months_ahead as i32)
                .fetch_all(&self.pool),
            )
            .map_err(pg("checking partition coverage"))?;
        Ok(rows
            .iter()
            .map(|r| MonthCoverage {
                month: r.get(0),
                partition: r.get(1),
                present: r.get(2),
            })
            .collect())
    }

    /// Creates the partitions the months of `events` need (outside the append transaction:
    /// the DDL locks the parent table).
    pub(super) fn ensure_partitions(&self, events: &[Envelope]) -> Result<()> {
        let needed: BTreeSet<String> = events.iter().map(|e| month_of(e.ingested_at)).collect();
        let missing: Vec<String> = {
            let known = self.months.lock().expect("months lock");
            needed.difference(&known).cloned().collect()
        };
        for m in missing {
            self.rt
                .block_on(
                    sqlx::query("SELECT create_event_log_partition($1::date)")
                        .bind(&m)
                        .execute(&self.pool),
                )
                .map_err(pg(format!("creating the event_log partition for {m}")))?;
            self.months.lock().expect("months lock").insert(m);
        }
        Ok(())
    }
}
