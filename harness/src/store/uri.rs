//! Store URIs, parsed once: every command's `--store` is a [`StoreUri`], and the store behind it
//! is opened here. Credentials never leave this type unredacted: `Display` and
//! [`StoreUri::redacted`] hide the password; only the connection itself sees it.
//!
//! - a directory path, or `file://DIR`: the embedded file store;
//! - `postgres://USER[:PASSWORD]@HOST:PORT/DB` (or `postgresql://`): PostgreSQL;
//! - `clickhouse://[USER[:PASSWORD]@]HOST:PORT/DB`: ClickHouse (its HTTP port).
//!
//! Anything else that looks like a URI (`scheme:/...`, a mistyped `postgres:/x`) is refused
//! rather than taken for a directory name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[cfg(feature = "databases")]
use super::{ChStore, PgStore};
use super::{EventSource, FileStore, FileStoreOptions, Store};
use crate::error::{Error, Result};

/// Where a store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUri {
    /// The embedded file store in this directory.
    File(PathBuf),
    /// A PostgreSQL database; the connection URL as given (with any password).
    Postgres(String),
    /// A ClickHouse database; the URL as given.
    ClickHouse(String),
}

const EXPECTED: &str = "want a file store (a directory, or file://DIR), postgres://USER@HOST:PORT/DB or clickhouse://HOST:PORT/DB";

impl FromStr for StoreUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadStoreUri {
            uri: redact(s),
            reason,
        };
        if s.is_empty() {
            return Err(bad(EXPECTED.into()));
        }
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad(
                    "file:// needs a directory: file:///path/to/store".into()
                ));
            }
            return Ok(StoreUri::File(PathBuf::from(path)));
        }
        let Some((scheme, rest)) = scheme_of(s) else {
            return Ok(StoreUri::File(PathBuf::from(s)));
        };
        let Some(authority) = rest.strip_prefix("//") else {
            return Err(bad(format!(
                "`{scheme}:` without `//`: did you mean {scheme}://...? ({EXPECTED})"
            )));
        };
        let host = authority
            .split('/')
            .next()
            .unwrap_or("")
            .rsplit('@')
            .next()
            .unwrap_or("");
        match scheme {
            "postgres" | "postgresql" | "clickhouse" if host.is_empty() => {
                Err(bad(format!("no host in the URI ({EXPECTED})")))
            }
            "postgres" | "postgresql" => Ok(StoreUri::Postgres(s.to_string())),
            "clickhouse" => Ok(StoreUri::ClickHouse(s.to_string())),
            _ => Err(bad(format!("unknown scheme `{scheme}` ({EXPECTED})"))),
        }
    }
}

/// The scheme of `s` if it starts like a URI (`letters:` then `/`), not like a path. A
/// Windows-style `C:/` is one letter and is left to be a path.
fn scheme_of(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let looks = scheme.len() > 1
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && rest.starts_with('/');
    looks.then_some((scheme, rest))
}

impl StoreUri {
    /// The URI with any password replaced by `***`: for run cards, logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            StoreUri::File(p) => p.display().to_string(),
            StoreUri::Postgres(u) | StoreUri::ClickHouse(u) => redact(u),
        }
    }

    /// The file store's directory, if this is one.
    pub fn file_path(&self) -> Option<&Path> {
        match self {
            StoreUri::File(p) => Some(p),
            _ => None,
        }
    }

    /// Opens the store to read.
    pub fn open(&self) -> Result<Box<dyn EventSource>> {
        match self {
            StoreUri::File(p) => Ok(Box::new(FileStore::open(p)?)),
            _ => Ok(self.open_database()?),
        }
    }

    /// Opens the store to read and write: a file store is created if missing; a database
    /// must have been migrated (`tapedeck migrate`).
    pub fn open_writable(&self) -> Result<Box<dyn Store>> {
        self.open_writable_with(FileStoreOptions::default())
    }

    /// [`StoreUri::open_writable`] with the file store's options (its writer lock timeout);
    /// other stores ignore them.
    pub fn open_writable_with(&self, file: FileStoreOptions) -> Result<Box<dyn Store>> {
        match self {
            StoreUri::File(p) => Ok(Box::new(FileStore::create(p, file)?)),
            _ => self.open_database(),
        }
    }

    /// Connects to a database store (a file store is not one).
    fn open_database(&self) -> Result<Box<dyn Store>> {
        #[cfg(feature = "databases")]
        match self {
            StoreUri::Postgres(u) => return Ok(Box::new(PgStore::connect(u)?)),
            StoreUri::ClickHouse(u) => return Ok(Box::new(ChStore::connect(u)?)),
            StoreUri::File(_) => {}
        }
        Err(self.no_database())
    }

    fn no_database(&self) -> Error {
        Error::BadStoreUri {
            uri: self.redacted(),
            reason: "this build of tapedeck has no database stores (built without the `databases` feature)".into(),
        }
    }

    /// Creates or updates a database store's schema (`tapedeck migrate`); returns the
    /// migrations applied. A file store needs none.
    pub fn migrate(&self) -> Result<Vec<i64>> {
        match self {
            StoreUri::File(_) => Err(Error::BadStoreUri {
                uri: self.redacted(),
                reason: "a file store has no schema to migrate (it is created on first write)"
                    .into(),
            }),
            #[cfg(feature = "databases")]
            StoreUri::Postgres(u) => PgStore::migrate(u),
            #[cfg(feature = "databases")]
            StoreUri::ClickHouse(u) => super::clickhouse::migrate(u),
            #[cfg(not(feature = "databases"))]
            _ => Err(self.no_database()),
        }
    }

    /// The ClickHouse URI, or an error saying this command wants one.
    pub fn clickhouse(&self, command: &str) -> Result<&str> {
        match self {
            StoreUri::ClickHouse(u) => Ok(u),
            _ => Err(Error::BadStoreUri {
                uri: self.redacted(),
                reason: format!("`{command}` is for ClickHouse stores (clickhouse://HOST:PORT/DB)"),
            }),
        }
    }

    /// The PostgreSQL URL, or an error saying this command wants one.
    pub fn postgres(&self, command: &str) -> Result<&str> {
        match self {
            StoreUri::Postgres(u) => Ok(u),
            _ => Err(Error::BadStoreUri {
                uri: self.redacted(),
                reason: format!(
                    "`{command}` is for PostgreSQL stores (postgres://USER@HOST:PORT/DB)"
                ),
            }),
        }
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUri({})", self.redacted())
    }
}

/// `uri` without its password (`scheme://user:***@host/...`).
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => uri.to_string(),
        },
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreUri> {
        s.parse()
    }

    #[test]
    fn schemes_and_paths() {
        assert_eq!(
            parse("fixtures/store").unwrap(),
            StoreUri::File("fixtures/store".into())
        );
        assert_eq!(
            parse("file:///tmp/s").unwrap(),
            StoreUri::File("/tmp/s".into())
        );
        assert!(matches!(
            parse("postgres://u@127.0.0.1:5432/db").unwrap(),
            StoreUri::Postgres(_)
        ));
        assert!(matches!(
            parse("postgresql://u@h/db").unwrap(),
            StoreUri::Postgres(_)
        ));
        assert!(matches!(
            parse("clickhouse://127.0.0.1:8123/db").unwrap(),
            StoreUri::ClickHouse(_)
        ));
        // A relative path with a colon that is not a scheme stays a path.
        assert!(matches!(parse("runs/a:b").unwrap(), StoreUri::File(_)));
    }

    // See: issue "Nothing lost", item 6: `postgres:/x` made a directory named `postgres:`.
    #[test]
    fn mistyped_uris_are_refused_not_taken_for_directories() {
        let e = parse("postgres:/x").unwrap_err().to_string();
        assert!(e.contains("did you mean postgres://"), "{e}");
        let e = parse("mysql://h/db").unwrap_err().to_string();
        assert!(e.contains("unknown scheme `mysql`"), "{e}");
        let e = parse("postgres:///db").unwrap_err().to_string();
        assert!(e.contains("no host"), "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn passwords_never_print() {
        let u = parse("postgres://me:s3cret@h:5432/db").unwrap();
        assert_eq!(u.to_string(), "postgres://me:***@h:5432/db");
        assert!(!format!("{u:?}").contains("s3cret"));
        let e = parse("mysql://me:s3cret@h/db").unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert_eq!(redact("postgres://me@h/db"), "postgres://me@h/db");
        // An @ in the password is still hidden.
        assert_eq!(redact("postgres://me:a@b@h/db"), "postgres://me:***@h/db");
    }
}
