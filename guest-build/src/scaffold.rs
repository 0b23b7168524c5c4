//! New guest crates (`tapedeck new strategy|projector NAME`): a crate that builds with
//! `tapedeck build` as written, wherever it is put (it is a workspace of its own and needs no
//! `[profile.guest]`), with native unit tests through the SDK's driver, an example config and
//! a README. The templates are the files in `templates/`; `{{...}}` are filled in here.
//! `--lang python|js` makes a Python folder (pyproject.toml, a module, unittest tests) or a
//! JavaScript one (package.json, `src/`, node tests) instead, built by `tapedeck build` too.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::script::Lang;
use crate::{Error, Result};

/// Which world the new crate exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Strategy,
    Projector,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Strategy => "strategy",
            Kind::Projector => "projector",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the new crate gets `tapedeck-guest` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A `guest-sdk` directory.
    Path(PathBuf),
    /// A git repository holding the SDK.
    Git(String),
}

impl Sdk {
    /// `PATH` or a git URL (`https://`, `http://`, `ssh://`, `git@`, `file://`).
    pub fn parse(s: &str) -> Sdk {
        if ["https://", "http://", "ssh://", "git@", "file://"]
            .iter()
            .any(|p| s.starts_with(p))
        {
            Sdk::Git(s.to_string())
        } else {
            Sdk::Path(PathBuf::from(s))
        }
    }

    /// The SDK of the source tree this crate was built from, if it is still there.
    pub fn built_from() -> Option<Sdk> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
        dir.join("Cargo.toml")
            .is_file()
            .then(|| dir.canonicalize().ok())
            .flatten()
            .map(Sdk::Path)
    }

    fn dependency(&self, kind: Kind) -> String {
        match self {
            Sdk::Path(p) => format!(
                "tapedeck-guest = {{ path = {}, features = [\"{kind}\"] }}",
                toml_string(&p.display().to_string())
            ),
            Sdk::Git(url) => format!(
                "tapedeck-guest = {{ git = {}, features = [\"{kind}\"] }}",
                toml_string(url)
            ),
        }
    }
}

/// A TOML basic string (the same escapes make a JSON string).
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What to make.
#[derive(Debug, Clone)]
pub struct NewCrate {
    pub kind: Kind,
    /// The package name: lowercase letters, digits, `-` and `_`, starting with a letter.
    pub name: String,
    /// The crate directory (created; must not exist or be empty).
    pub dir: PathBuf,
    pub sdk: Sdk,
    /// The guest's language.
    pub lang: Lang,
}

/// Checks a package name, saying what is wrong with it.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let first = name.chars().next();
    if !first.is_some_and(|c| c.is_ascii_lowercase()) {
        return Err(format!(
            "`{name}`: a guest name starts with a lowercase letter"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{name}`: `{c}` is not allowed; use lowercase letters, digits, `-` and `_`"
        ));
    }
    // Names the generated code or cargo cannot take.
    if [
        "test",
        "core",
        "std",
        "alloc",
        "proc_macro",
        "self",
        "crate",
        "super",
    ]
    .contains(&name.replace('-', "_").as_str())
    {
        return Err(format!("`{name}` is reserved; choose another name"));
    }
    Ok(())
}

/// `my-strategy` -> `MyStrategy`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

/// The files of a new crate, by path relative to its directory.
pub fn files(kind: Kind, name: &str, sdk: &Sdk) -> Vec<(&'static str, String)> {
    let (lib, config, usage) = match kind {
        Kind::Strategy => (
            include_str!("../templates/strategy/lib.rs.tmpl"),
            include_str!("../templates/strategy/config.json.tmpl"),
            include_str!("../templates/strategy/usage.md.tmpl"),
        ),
        Kind::Projector => (
            include_str!("../templates/projector/lib.rs.tmpl"),
            include_str!("../templates/projector/config.json.tmpl"),
            include_str!("../templates/projector/usage.md.tmpl"),
        ),
    };
    let fill = |t: &str| {
        t.replace("{{usage}}", usage.trim_end())
            .replace("{{sdk_dependency}}", &sdk.dependency(kind))
            .replace("{{repository}}", REPOSITORY)
            .replace("{{kind}}", kind.as_str())
            .replace("{{Type}}", &type_name(name))
            .replace("{{name}}", name)
    };
    vec![
        (
            "Cargo.toml",
            fill(include_str!("../templates/Cargo.toml.tmpl")),
        ),
        (
            "README.md",
            fill(include_str!("../templates/README.md.tmpl")),
        ),
        ("config.json", fill(config)),
        ("src/lib.rs", fill(lib)),
        (".gitignore", "/target\n".to_string()),
    ]
}

/// The files of a new Python or JavaScript guest, by path relative to its directory; `sdk` is
/// the `guest-sdk` directory (absolute).
pub fn script_files(lang: Lang, kind: Kind, name: &str, sdk: &Path) -> Vec<(String, String)> {
    let module = name.replace('-', "_");
    let driver = match kind {
        Kind::Strategy => "StrategyDriver",
        Kind::Projector => "ProjectorDriver",
    };
    let config = match kind {
        Kind::Strategy if lang == Lang::Python => {
            "{ \"alpha\": 0.1, \"threshold_bps\": 0.5, \"qty\": 1.0 }\n"
        }
        Kind::Strategy => "{ \"alpha\": 0.1, \"thresholdBps\": 0.5, \"qty\": 1.0 }\n",
        Kind::Projector => "{}\n",
    };
    let fill = |t: &str| {
        t.replace("{{sdk_path}}", &toml_string(&sdk.display().to_string()))
            .replace("{{sdk_python}}", &sdk.join("python").display().to_string())
            .replace(
                "{{sdk_js_dep}}",
                &toml_string(&format!("file:{}", sdk.join("js").display())),
            )
            .replace("{{module}}", &module)
            .replace("{{Driver}}", driver)
            .replace("{{kind}}", kind.as_str())
            .replace("{{Type}}", &type_name(name))
            .replace("{{name}}", name)
    };
    match lang {
        Lang::Python => vec![
            (
                "pyproject.toml".into(),
                fill(include_str!("../templates/python/pyproject.toml.tmpl")),
            ),
            (
                format!("{module}.py"),
                fill(match kind {
                    Kind::Strategy => include_str!("../templates/python/strategy.py.tmpl"),
                    Kind::Projector => include_str!("../templates/python/projector.py.tmpl"),
                }),
            ),
            (
                format!("test_{module}.py"),
                fill(include_str!("../templates/python/test.py.tmpl")),
            ),
            (
                "README.md".into(),
                fill(include_str!("../templates/python/README.md.tmpl")),
            ),
            ("config.json".into(), config.into()),
            (".gitignore".into(), "__pycache__/\n/target\n".into()),
        ],
        _ => vec![
            (
                "package.json".into(),
                fill(include_str!("../templates/js/package.json.tmpl")),
            ),
            (
                format!("src/{}.js", kind.as_str()),
                fill(match kind {
                    Kind::Strategy => include_str!("../templates/js/strategy.js.tmpl"),
                    Kind::Projector => include_str!("../templates/js/projector.js.tmpl"),
                }),
            ),
            (
                "test/guest.test.js".into(),
                fill(include_str!("../templates/js/test.js.tmpl")),
            ),
            (
                "README.md".into(),
                fill(include_str!("../templates/js/README.md.tmpl")),
            ),
            ("config.json".into(), config.into()),
            (".gitignore".into(), "node_modules/\n/target\n".into()),
        ],
    }
}

/// Writes the new crate; returns the files written. Refuses a directory that has anything in
/// it, so nothing is overwritten.
pub fn create(c: &NewCrate) -> Result<Vec<PathBuf>> {
    check_name(&c.name).map_err(|message| Error::Manifest {
        path: c.dir.join("Cargo.toml"),
        message,
    })?;
    let io = |what: String| move |source| Error::Io { what, source };
    if c.dir.exists() {
        let mut entries =
            std::fs::read_dir(&c.dir).map_err(io(format!("reading {}", c.dir.display())))?;
        if entries.next().is_some() {
            return Err(Error::Manifest {
                path: c.dir.clone(),
                message: "exists and is not empty; `tapedeck new` writes only into a new or empty directory".into(),
            });
        }
    }
    let files: Vec<(String, String)> = match (c.lang, &c.sdk) {
        (Lang::Rust, sdk) => files(c.kind, &c.name, sdk)
            .into_iter()
            .map(|(rel, text)| (rel.to_string(), text))
            .collect(),
        (lang, Sdk::Path(sdk)) => script_files(lang, c.kind, &c.name, sdk),
        (_, Sdk::Git(url)) => {
            return Err(Error::Manifest {
                path: c.dir.clone(),
                message: format!(
                    "--sdk {url}: a Python or JavaScript guest needs a `guest-sdk` directory \
                     (a clone's), not a git URL"
                ),
            });
        }
    };
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = c.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_typed() {
        assert!(check_name("my-strategy_2").is_ok());
        for bad in ["", "2fast", "My", "a b", "a.b", "test", "std"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(type_name("my-strategy_2"), "MyStrategy2");
        assert_eq!(type_name("x"), "X");
    }

    #[test]
    fn every_placeholder_is_filled() {
        for kind in [Kind::Strategy, Kind::Projector] {
            for sdk in [
                Sdk::parse("/sdk \"x\""),
                Sdk::parse("https://example.invalid/t"),
            ] {
                for (rel, text) in files(kind, "my-guest", &sdk) {
                    assert!(!text.contains("{{"), "{kind} {rel}: {text}");
                }
            }
        }
        for lang in [Lang::Python, Lang::JavaScript] {
            for kind in [Kind::Strategy, Kind::Projector] {
                for (rel, text) in script_files(lang, kind, "my-guest", Path::new("/s \"x\"")) {
                    assert!(!text.contains("{{"), "{lang:?} {kind} {rel}: {text}");
                }
            }
        }
        let cargo = &files(Kind::Projector, "p", &Sdk::parse("/sdk \"x\""))[0].1;
        assert!(
            cargo.contains(r#"tapedeck-guest = { path = "/sdk \"x\"", features = ["projector"] }"#),
            "{cargo}"
        );
    }
}
