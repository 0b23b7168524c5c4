//! The grid file (`grid.toml`): a strategy's config over a grid of points.
//!
//! ```toml
//! [base]                 # optional: merged under every point
//! qty = 1.0
//! [grid]                 # a cartesian product ...
//! fast = [0.1, 0.2]
//! slow = [0.02, 0.05]
//! # ... or an explicit list of points instead of [grid]:
//! # [[point]]
//! # fast = 0.1
//! # slow = 0.02
//! ```
//!
//! Invariants:
//! - A parameter value is a number, a boolean or a string; a parameter has one kind over
//!   all points (integers and floats mix as numbers), so it is one column of the table.
//! - The points of a cartesian product are numbered in the order of the parameters' names,
//!   the last name varying fastest, each parameter's values in the order listed; an explicit
//!   list keeps its order. The numbering is what shards deal out and what `points/NNNN` names.
//! - A point's config is `[base]` with the point's parameters over it, as JSON with keys in
//!   alphabetical order: the same grid gives the same config bytes.
//! - Every refusal names the file and the key (`grid.fast`, `point[2].slow`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Columns of `sweep.parquet` a parameter may not be named after.
pub const RESERVED: [&str; 18] = [
    "rank",
    "point",
    "events",
    "orders",
    "fills",
    "closed_trades",
    "pnl",
    "return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration_ns",
    "win_rate",
    "profit_factor",
    "turnover",
    "fees",
    "exposure",
    "findings",
];

/// More points than this is a mistake in the grid, not a sweep.
pub const MAX_POINTS: usize = 1_000_000;

/// One parameter's value at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// What column a parameter makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    Str,
}

impl ParamValue {
    fn kind(&self) -> Kind {
        match self {
            ParamValue::Bool(_) => Kind::Bool,
            ParamValue::Int(_) => Kind::Int,
            ParamValue::Float(_) => Kind::Float,
            ParamValue::Str(_) => Kind::Str,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(v) => Some(*v as f64),
            ParamValue::Float(v) => Some(*v),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Bool(b) => Value::Bool(*b),
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Float(f) => Value::from(*f),
            ParamValue::Str(s) => Value::String(s.clone()),
        }
    }

    /// Numbers by value, then booleans, then strings.
    pub fn total_cmp(&self, other: &ParamValue) -> Ordering {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            _ => match (self, other) {
                (ParamValue::Bool(a), ParamValue::Bool(b)) => a.cmp(b),
                (ParamValue::Str(a), ParamValue::Str(b)) => a.cmp(b),
                _ => self.rank().cmp(&other.rank()),
            },
        }
    }

    fn rank(&self) -> u8 {
        match self {
            ParamValue::Int(_) | ParamValue::Float(_) => 0,
            ParamValue::Bool(_) => 1,
            ParamValue::Str(_) => 2,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(v) => write!(f, "{v:?}"),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// A parsed, checked grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The file's name, as messages and the sweep card give it.
    pub file: String,
    /// `[base]`, as JSON.
    pub base: Map<String, Value>,
    /// Every parameter any point sets, by name, with its column kind.
    pub params: BTreeMap<String, Kind>,
    /// Each point's parameters, in point order.
    pub points: Vec<BTreeMap<String, ParamValue>>,
}

fn bad(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Grid {
        file: file.to_string(),
        key: key.into(),
        reason: reason.into(),
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn scalar(file: &str, key: &str, v: &toml::Value) -> Result<ParamValue> {
    match v {
        toml::Value::Integer(i) => Ok(ParamValue::Int(*i)),
        toml::Value::Float(f) if f.is_finite() => Ok(ParamValue::Float(*f)),
        toml::Value::Float(f) => Err(bad(file, key, format!("{f} is not a finite number"))),
        toml::Value::Boolean(b) => Ok(ParamValue::Bool(*b)),
        toml::Value::String(s) => Ok(ParamValue::Str(s.clone())),
        other => Err(bad(
            file,
            key,
            format!(
                "want a number, a boolean or a string, got {}",
                type_name(other)
            ),
        )),
    }
}

fn to_json(file: &str, key: &str, v: &toml::Value) -> Result<Value> {
    Ok(match v {
        toml::Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| to_json(file, &format!("{key}[{i}]"), x))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, x)| Ok((k.clone(), to_json(file, &format!("{key}.{k}"), x)?)))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Datetime(_) => {
            return Err(bad(
                file,
                key,
                "a date-time has no JSON form: write a string",
            ));
        }
        other => scalar(file, key, other)?.to_json(),
    })
}

/// The kind two values of one parameter make together, if they go in one column.
fn join(a: Kind, b: Kind) -> Option<Kind> {
    match (a, b) {
        (x, y) if x == y => Some(x),
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Some(Kind::Float),
        _ => None,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Int | Kind::Float => "a number",
        Kind::Bool => "a boolean",
        Kind::Str => "a string",
    }
}

impl Grid {
    /// Reads and checks the grid file at `path`.
    pub fn load(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Grid::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks grid text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Grid> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| bad(file, "", e.to_string()))?;
        let mut base = Map::new();
        let mut grid = None;
        let mut list = None;
        for (k, v) in &doc {
            match (k.as_str(), v) {
                ("base", toml::Value::Table(t)) => {
                    for (bk, bv) in t {
                        base.insert(bk.clone(), to_json(file, &format!("base.{bk}"), bv)?);
                    }
                }
                ("grid", toml::Value::Table(t)) => grid = Some(t),
                ("point", toml::Value::Array(a)) => list = Some(a),
                ("base" | "grid", other) => {
                    return Err(bad(
                        file,
                        k,
                        format!("want a table ([{k}]), got {}", type_name(other)),
                    ));
                }
                ("point", other) => {
                    return Err(bad(
                        file,
                        k,
                        format!(
                            "want a list of tables ([[point]]), got {}",
                            type_name(other)
                        ),
                    ));
                }
                _ => {
                    return Err(bad(
                        file,
                        k,
                        "unknown key: a grid file has [base], and [grid] or [[point]]",
                    ));
                }
            }
        }
        let points = match (grid, list) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    file,
                    "point",
                    "a grid file has [grid] (a cartesian product) or [[point]] (a list), not both",
                ));
            }
            (None, None) => {
                return Err(bad(
                    file,
                    "grid",
                    "no points: give [grid] (a cartesian product) or [[point]] (a list)",
                ));
            }
            (Some(g), None) => product(file, g)?,
            (None, Some(l)) => listed(file, l)?,
        };
        let params = kinds(file, &points, list.is_some())?;
        Ok(Grid {
            file: file.to_string(),
            base,
            params,
            points,
        })
    }

    /// A grid of `points` as a sweep's summaries give them back (a merge): no base.
    pub fn of_points(file: &str, points: Vec<BTreeMap<String, ParamValue>>) -> Result<Grid> {
        Ok(Grid {
            file: file.to_string(),
            base: Map::new(),
            params: kinds(file, &points, true)?,
            points,
        })
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Point `i`'s config: `[base]` with the point over it, JSON, keys sorted.
    pub fn config(&self, i: usize) -> String {
        let mut m = self.base.clone();
        for (k, v) in &self.points[i] {
            m.insert(k.clone(), v.to_json());
        }
        Value::Object(m).to_string()
    }

    /// The parameters that take more than one value over the points, by name.
    pub fn varying(&self) -> Vec<&str> {
        self.params
            .keys()
            .filter(|name| {
                let mut seen: Vec<Option<&ParamValue>> = Vec::new();
                for p in &self.points {
                    let v = p.get(*name);
                    if !seen.contains(&v) {
                        seen.push(v);
                    }
                }
                seen.len() > 1
            })
            .map(String::as_str)
            .collect()
    }

    /// `name=value, ...` of point `i`, for messages.
    pub fn describe(&self, i: usize) -> String {
        let parts: Vec<String> = self.points[i]
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(", ")
    }
}

/// Each parameter's column kind over `points`; `listed` names keys as an explicit list's.
fn kinds(
    file: &str,
    points: &[BTreeMap<String, ParamValue>],
    listed: bool,
) -> Result<BTreeMap<String, Kind>> {
    let mut params: BTreeMap<String, (Kind, usize)> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        for (name, v) in p {
            let key = if listed {
                format!("point[{i}].{name}")
            } else {
                format!("grid.{name}")
            };
            if RESERVED.contains(&name.as_str()) {
                return Err(bad(
                    file,
                    key,
                    format!("a parameter may not be named {name:?}, a column of sweep.parquet"),
                ));
            }
            match params.get_mut(name) {
                None => {
                    params.insert(name.clone(), (v.kind(), i));
                }
                Some((k, first)) => {
                    *k = join(*k, v.kind()).ok_or_else(|| {
                            bad(
                                file,
                                &key,
                                format!(
                                    "{} where point {} has {}: a parameter is all numbers, all booleans or all strings",
                                    kind_name(v.kind()),
                                    first,
                                    kind_name(*k)
                                ),
                            )
                        })?;
                }
            }
        }
    }
    Ok(params.into_iter().map(|(k, (kind, _))| (k, kind)).collect())
}

fn product(file: &str, g: &toml::Table) -> Result<Vec<BTreeMap<String, ParamValue>>> {
    let mut axes: Vec<(&String, Vec<ParamValue>)> = Vec::new();
    for (name, v) in g {
        let key = format!("grid.{name}");
        let toml::Value::Array(values) = v else {
            return Err(bad(
                file,
                key,
                format!(
                    "want a list of values ({name} = [1, 2]), got {}",
                    type_name(v)
                ),
            ));
        };
        if values.is_empty() {
            return Err(bad(file, key, "an empty list: give at least one value"));
        }
        let mut out: Vec<ParamValue> = Vec::with_capacity(values.len());
        for (j, x) in values.iter().enumerate() {
            let pv = scalar(file, &format!("{key}[{j}]"), x)?;
            if let Some(first) = out.first()
                && join(first.kind(), pv.kind()).is_none()
            {
                return Err(bad(
                    file,
                    format!("{key}[{j}]"),
                    format!(
                        "{} in a list of {}: a parameter is all numbers, all booleans or all strings",
                        kind_name(pv.kind()),
                        kind_name(first.kind())
                    ),
                ));
            }
            if out.iter().any(|o| o.total_cmp(&pv) == Ordering::Equal) {
                return Err(bad(file, key, format!("{pv} is listed twice")));
            }
            out.push(pv);
        }
        axes.push((name, out));
    }
    if axes.is_empty() {
        return Err(bad(
            file,
            "grid",
            "no parameters: give name = [values, ...]",
        ));
    }
    let total = axes
        .iter()
        .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
        .filter(|n| *n <= MAX_POINTS)
        .ok_or_else(|| bad(file, "grid", format!("more than {MAX_POINTS} points")))?;
    let mut points = Vec::with_capacity(total);
    for i in 0..total {
        let mut rest = i;
        let mut p = BTreeMap::new();
        for (name, values) in axes.iter().rev() {
            p.insert((*name).clone(), values[rest % values.len()].clone());
            rest /= values.len();
        }
        points.push(p);
    }
    Ok(points)
}

fn listed(file: &str, l: &[toml::Value]) -> Result<Vec<BTreeMap<String, ParamValue>>> {
    if l.is_empty() {
        return Err(bad(file, "point", "an empty list of points"));
    }
    if l.len() > MAX_POINTS {
        return Err(bad(file, "point", format!("more than {MAX_POINTS} points")));
    }
    l.iter()
        .enumerate()
        .map(|(i, p)| {
            let toml::Value::Table(t) = p else {
                return Err(bad(
                    file,
                    format!("point[{i}]"),
                    format!("want a table, got {}", type_name(p)),
                ));
            };
            t.iter()
                .map(|(k, v)| Ok((k.clone(), scalar(file, &format!("point[{i}].{k}"), v)?)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Grid::parse("g.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_product_is_numbered_last_name_fastest_over_the_base() {
        let g = Grid::parse(
            "g.toml",
            "[base]\nqty = 2.0\nfast = 9.0\n[grid]\nslow = [0.02, 0.05]\nfast = [0.1, 0.2, 0.3]\n",
        )
        .unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g.config(0), r#"{"fast":0.1,"qty":2.0,"slow":0.02}"#);
        assert_eq!(g.config(1), r#"{"fast":0.1,"qty":2.0,"slow":0.05}"#);
        assert_eq!(g.config(5), r#"{"fast":0.3,"qty":2.0,"slow":0.05}"#);
        assert_eq!(g.varying(), ["fast", "slow"]);
        assert_eq!(g.describe(2), "fast=0.2, slow=0.02");
    }

    #[test]
    fn a_list_keeps_its_order_and_kinds_join() {
        let g = Grid::parse(
            "g.toml",
            "[[point]]\nfast = 0.1\nwarmup = 5\n[[point]]\nfast = 1\nwarmup = 5\n",
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.params["fast"], Kind::Float);
        assert_eq!(g.params["warmup"], Kind::Int);
        assert_eq!(g.varying(), ["fast"]);
    }

    #[test]
    fn bad_grids_are_refused_naming_the_file_and_key() {
        for (text, says) in [
            (
                "[grid]\nfast = 0.1\n",
                "g.toml: grid.fast: want a list of values",
            ),
            ("[grid]\nfast = []\n", "g.toml: grid.fast: an empty list"),
            (
                "[grid]\nfast = [0.1, \"x\"]\n",
                "g.toml: grid.fast[1]: a string in a list of a number",
            ),
            (
                "[grid]\nfast = [0.1, 0.1]\n",
                "g.toml: grid.fast: 0.1 is listed twice",
            ),
            (
                "[grid]\nfast = [[1]]\n",
                "g.toml: grid.fast[0]: want a number",
            ),
            (
                "[grid]\npnl = [1, 2]\n",
                "g.toml: grid.pnl: a parameter may not be named",
            ),
            ("[grids]\nfast = [1]\n", "g.toml: grids: unknown key"),
            ("[base]\nqty = 1\n", "g.toml: grid: no points"),
            (
                "[grid]\na = [1]\n[[point]]\na = 1\n",
                "g.toml: point: a grid file has [grid]",
            ),
            (
                "[[point]]\na = 1\n[[point]]\na = \"x\"\n",
                "g.toml: point[1].a: a string where point 0 has a number",
            ),
            ("[[point]]\na = [1]\n", "g.toml: point[0].a: want a number"),
            ("grid = 3\n", "g.toml: grid: want a table"),
            ("[grid\n", "g.toml: "),
        ] {
            let e = err(text);
            assert!(e.starts_with(says), "{text:?}: {e}");
        }
    }
}
