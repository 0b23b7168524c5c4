//! Structural diff of projected state against a stored snapshot: typed findings, one per
//! differing leaf, with absolute numeric tolerances chosen per path.
//!
//! Paths read like insta's selectors: `.books.1.bids[0][0]`. A tolerance pattern matches a
//! path with `*` standing for any run of characters (`.instruments.*.avg_price`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::glob::glob_match;

/// Numeric tolerances by path pattern; the first matching pattern wins, else exact.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tolerances {
    #[serde(default)]
    pub numeric: Vec<(String, f64)>,
}

impl Tolerances {
    /// Reads `{"numeric": [[".path.*", 1e-9], ...]}`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid tolerance config: {e}"))
    }

    fn for_path(&self, path: &str) -> f64 {
        self.numeric
            .iter()
            .find(|(p, _)| glob_match(p, path))
            .map_or(0.0, |(_, t)| *t)
    }
}

/// One differing leaf (or a key/element present on one side only, shown as `null` on the other).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub path: String,
    pub expected: Value,
    pub actual: Value,
}

/// Every difference between `expected` and `actual`, in path order.
pub fn diff(expected: &Value, actual: &Value, tol: &Tolerances) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(String::new(), expected, actual, tol, &mut out);
    out
}

fn walk(path: String, e: &Value, a: &Value, tol: &Tolerances, out: &mut Vec<Difference>) {
    match (e, a) {
        (Value::Object(em), Value::Object(am)) => {
            let mut keys: Vec<&String> = em.keys().chain(am.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                walk(
                    p,
                    em.get(k).unwrap_or(&Value::Null),
                    am.get(k).unwrap_or(&Value::Null),
                    tol,
                    out,
                );
            }
        }
        (Value::Array(ev), Value::Array(av)) => {
            for i in 0..ev.len().max(av.len()) {
                walk(
                    format!("{path}[{i}]"),
                    ev.get(i).unwrap_or(&Value::Null),
                    av.get(i).unwrap_or(&Value::Null),
                    tol,
                    out,
                );
            }
        }
        (Value::Number(x), Value::Number(y)) if x != y => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            let t = tol.for_path(if path.is_empty() { "." } else { &path });
            // NaN (a number JSON cannot hold exactly) never counts as within tolerance.
            let within = (x - y).abs() <= t;
            if !within {
                out.push(Difference {
                    path: display(path),
                    expected: e.clone(),
                    actual: a.clone(),
                });
            }
        }
        _ if e != a => out.push(Difference {
            path: display(path),
            expected: e.clone(),
            actual: a.clone(),
        }),
        _ => {}
    }
}

fn display(path: String) -> String {
    if path.is_empty() { ".".into() } else { path }
}

/// A readable rendering: one `-`/`+` pair per difference.
pub fn render(diffs: &[Difference]) -> String {
    let mut s = String::new();
    for d in diffs {
        s.push_str(&format!(
            "  {}\n    - {}\n    + {}\n",
            d.path, d.expected, d.actual
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_each_leaf_that_differs() {
        let e =
            json!({"books": {"1": {"bids": [[100.0, 1.0], [99.0, 2.0]], "last": 5}}, "gone": 1});
        let a = json!({"books": {"1": {"bids": [[100.0, 1.5], [99.0, 2.0], [98.0, 1.0]], "last": 5}}, "new": true});
        let d = diff(&e, &a, &Tolerances::default());
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [".books.1.bids[0][1]", ".books.1.bids[2]", ".gone", ".new"]
        );
        assert_eq!(d[0].expected, json!(1.0));
        assert_eq!(d[0].actual, json!(1.5));
        assert_eq!(d[1].expected, Value::Null);
        assert!(diff(&e, &e, &Tolerances::default()).is_empty());
    }

    #[test]
    fn tolerances_apply_per_path() {
        let e = json!({"p": {"1": {"avg": 100.0, "qty": 1.0}}});
        let a = json!({"p": {"1": {"avg": 100.0000001, "qty": 1.0000001}}});
        let tol = Tolerances::from_json(r#"{"numeric": [[".p.*.avg", 1e-6]]}"#).unwrap();
        let d = diff(&e, &a, &tol);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, ".p.1.qty");
        assert!(render(&d).contains("- 1.0\n    + 1.0000001"));
        assert!(Tolerances::from_json("{\"numeric\": 3}").is_err());
    }

    #[test]
    fn integers_and_floats_compare_by_value() {
        assert!(diff(&json!({"a": 1}), &json!({"a": 1.0}), &Tolerances::default()).is_empty());
        assert_eq!(
            diff(&json!(1), &json!("1"), &Tolerances::default()).len(),
            1
        );
    }
}
