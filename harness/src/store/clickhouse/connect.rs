//! Connecting to ClickHouse and keeping its schema: the URI becomes an HTTP client (validation
//! off, as 18.16 needs), the versioned migrations under `migrations/clickhouse/` are embedded
//! and applied by [`migrate`], and [`ChStore::connect`] refuses a database whose schema is
//! missing, older or newer than this build's, saying what to run.
//!
//! Statements go one per HTTP request; queries that return data ask for RowBinary and are parsed
//! by `rows`. `?` in SQL is a bind placeholder of the client (`??` is a literal `?`).

use ::clickhouse::Client;
use tapedeck_guest::codec::LAYOUT_VERSION;

use super::ChStore;
use super::decode::Cur;
use crate::error::{Error, Result};
use crate::store::uri::redact;

/// The migrations in `migrations/clickhouse/`, in order: (version, name, SQL).
pub(super) const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "event store",
        include_str!("../../../../migrations/clickhouse/0001_event_store.sql"),
    ),
    (
        2,
        "events without packed",
        include_str!("../../../../migrations/clickhouse/0002_events_without_packed.sql"),
    ),
];

/// Seconds a stream lock (`lock`) holds before other writers may break it.
pub(super) const LEASE_SECS: u64 = 60;

/// `tapedeck_meta` key recording the codec layout of the packed columns.
const LAYOUT_KEY: &str = "packed_layout";

/// The parts of `clickhouse://[USER[:PASS]@]HOST:PORT/DB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) http: String,
    pub(super) database: String,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
}

impl Target {
    pub(super) fn parse(uri: &str) -> Result<Target> {
        let bad = |reason: &str| Error::BadStoreUri {
            uri: redact(uri),
            reason: format!("{reason}; want clickhouse://[USER[:PASSWORD]@]HOST:PORT/DB"),
        };
        let rest = uri
            .strip_prefix("clickhouse://")
            .ok_or_else(|| bad("not a clickhouse:// URI"))?;
        let rest = rest.split('?').next().unwrap_or(rest);
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let db = if db.is_empty() { "default" } else { db };
        if !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad("the database name takes letters, digits and _"));
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(decode(u)), Some(decode(p))),
                None => (Some(decode(u)), None),
            },
        };
        let host = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:8123")
        };
        Ok(Target {
            http: format!("http://{host}"),
            database: db.to_string(),
            user,
            password,
        })
    }

    /// A client of the server; of the database unless `server_only`.
    pub(super) fn client(&self, server_only: bool) -> Client {
        let mut c = Client::default()
            .with_url(&self.http)
            .with_validation(false)
            // A server error in the middle of a result must be an error, not a short result.
            .with_setting("wait_end_of_query", "1");
        if !server_only {
            c = c.with_database(&self.database);
        }
        if let Some(u) = &self.user {
            c = c.with_user(u);
        }
        if let Some(p) = &self.password {
            c = c.with_password(p);
        }
        c
    }
}

/// `%XX` escapes of a URI's user info.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Maps a client error to [`Error::ClickHouse`] with what was being done.
pub(super) fn ch(context: impl Into<String>) -> impl FnOnce(::clickhouse::error::Error) -> Error {
    let context = context.into();
    move |e| Error::ClickHouse {
        context,
        message: e.to_string().trim().to_string(),
    }
}

/// The runtime a store blocks on.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tapedeck-ch")
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))
}

/// Runs one statement.
pub(super) async fn exec(c: &Client, sql: &str) -> Result<()> {
    c.query_raw(sql)
        .execute()
        .await
        .map_err(ch(sql.to_string()))
}

/// The whole RowBinary result of `q` (small results only).
pub(super) async fn fetch(q: ::clickhouse::query::Query, context: &str) -> Result<Vec<u8>> {
    let mut cur = q.fetch_bytes("RowBinary").map_err(ch(context))?;
    Ok(cur.collect().await.map_err(ch(context))?.to_vec())
}

/// The one `UInt64` a query returns.
pub(super) async fn scalar(q: ::clickhouse::query::Query, context: &str) -> Result<u64> {
    let b = fetch(q, context).await?;
    Cur::new(&b).u64().ok_or_else(|| Error::ClickHouse {
        context: context.to_string(),
        message: "no value returned".into(),
    })
}

/// The statements of a migration: split at `;` ending a line, comments dropped.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or("");
        if code.trim().is_empty() {
            continue;
        }
        cur.push_str(code);
        cur.push('\n');
        if code.trim_end().ends_with(';') {
            let s = cur.trim().trim_end_matches(';').to_string();
            out.push(s);
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Applies the migrations not yet applied to the database `uri` names (created if missing);
/// returns their versions.
pub fn migrate(uri: &str) -> Result<Vec<i64>> {
    let target = Target::parse(uri)?;
    let rt = runtime()?;
    rt.block_on(async {
        let server = target.client(true);
        exec(
            &server,
            &format!("CREATE DATABASE IF NOT EXISTS {}", target.database),
        )
        .await
        .map_err(|e| unreachable_server(uri, e))?;
        let c = target.client(false);
        exec(&c, statements(MIGRATIONS[0].2)[0].as_str()).await?;
        let applied = fetch(
            c.query("SELECT version FROM tapedeck_migrations ORDER BY version"),
            "reading applied migrations",
        )
        .await?;
        let mut cur = Cur::new(&applied);
        let mut before = Vec::new();
        while let Some(v) = cur.u32() {
            before.push(v);
        }
        let mut ran = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if before.contains(version) {
                continue;
            }
            for stmt in statements(sql) {
                exec(&c, &stmt).await?;
            }
            c.query("INSERT INTO tapedeck_migrations (version, name) VALUES (?, ?)")
                .bind(version)
                .bind(name)
                .execute()
                .await
                .map_err(ch("recording the migration"))?;
            ran.push(*version as i64);
        }
        c.query("INSERT INTO tapedeck_meta (key, value) VALUES (?, ?)")
            .bind(LAYOUT_KEY)
            .bind(LAYOUT_VERSION.to_string())
            .execute()
            .await
            .map_err(ch("recording the codec layout"))?;
        Ok(ran)
    })
}

/// A connection failure as an error naming the store.
fn unreachable_server(uri: &str, e: Error) -> Error {
    Error::BadStoreUri {
        uri: redact(uri),
        reason: format!("cannot connect: {e}"),
    }
}

/// Drops (if present) and creates database `name` on the server `server_url` names; returns
/// the new database's URI. For tests and benches: it destroys what the database held.
pub fn recreate_database(server_url: &str, name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::BadStoreUri {
            uri: redact(server_url),
            reason: format!("database name {name:?}: use lowercase letters, digits and _"),
        });
    }
    let target = Target::parse(server_url)?;
    let rt = runtime()?;
    rt.block_on(async {
        let c = target.client(true);
        exec(&c, &format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .map_err(|e| unreachable_server(server_url, e))?;
        exec(&c, &format!("CREATE DATABASE {name}")).await
    })?;
    let base = server_url.split('?').next().unwrap_or(server_url);
    let rest = &base["clickhouse://".len()..];
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(format!("clickhouse://{authority}/{name}"))
}

impl ChStore {
    /// Connects to a migrated store; a database without the schema, or with another version
    /// of it, is an error that says what to run.
    pub fn connect(uri: &str) -> Result<Self> {
        let target = Target::parse(uri)?;
        let rt = runtime()?;
        let client = target.client(false);
        let refuse = |reason: String| Error::BadStoreUri {
            uri: redact(uri),
            reason,
        };
        let (present, version, layout) = rt.block_on(async {
            let present = scalar(
                client.query(
                    "SELECT count() FROM system.tables WHERE database = currentDatabase() \
                     AND name IN ('tapedeck_migrations', 'tapedeck_meta')",
                ),
                "reading the schema version",
            )
            .await
            .map_err(|e| unreachable_server(uri, e))?;
            if present < 2 {
                return Ok((false, 0, None));
            }
            let version = scalar(
                client.query("SELECT toUInt64(max(version)) FROM tapedeck_migrations"),
                "reading the schema version",
            )
            .await?;
            let layout = fetch(
                client
                    .query("SELECT value FROM tapedeck_meta FINAL WHERE key = ?")
                    .bind(LAYOUT_KEY),
                "reading the codec layout",
            )
            .await?;
            let layout = Cur::new(&layout).str().map(str::to_string);
            Ok::<_, Error>((true, version, layout))
        })?;
        let ours = MIGRATIONS.last().map_or(0, |m| m.0) as u64;
        if !present {
            return Err(refuse(format!(
                "no tapedeck schema in this database; run `tapedeck migrate --store {}`",
                redact(uri)
            )));
        }
        if version < ours {
            return Err(refuse(format!(
                "the schema is at migration {version}, this tapedeck needs {ours}; run `tapedeck migrate --store {}`",
                redact(uri)
            )));
        }
        if version > ours {
            return Err(refuse(format!(
                "the schema is at migration {version}, newer than this tapedeck knows ({ours}); use a newer tapedeck"
            )));
        }
        Ok(ChStore {
            rt,
            client,
            uri: redact(uri),
            packed_current: layout.as_deref() == Some(&LAYOUT_VERSION.to_string()),
            lease_secs: LEASE_SECS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_statements() {
        let t = Target::parse("clickhouse://me:p%40ss@h:18123/db_1").unwrap();
        assert_eq!(t.http, "http://h:18123");
        assert_eq!(t.database, "db_1");
        assert_eq!(t.user.as_deref(), Some("me"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        let t = Target::parse("clickhouse://h").unwrap();
        assert_eq!(
            (t.http.as_str(), t.database.as_str()),
            ("http://h:8123", "default")
        );
        assert!(Target::parse("clickhouse://h/a;drop").is_err());
        let e = Target::parse("clickhouse://u:secret@/x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        let s = statements(
            "-- c\nCREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Memory;\n\nSELECT 1; -- end\n",
        );
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with("CREATE TABLE a"));
        assert_eq!(s[1], "SELECT 1");
        assert_eq!(
            statements(MIGRATIONS[0].2).len(),
            MIGRATIONS[0].2.matches(";\n").count()
        );
    }
}
