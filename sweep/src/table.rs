//! The sweep's table, in polars: one row per point (its index, every parameter as a column,
//! the figures of [`PointSummary`]), ranked by the metric, grouped per parameter for the
//! marginals, and written as `sweep.parquet`.
//!
//! Invariants: the ranking is total and stable: by the metric (best first, absent values
//! last), ties by point index; the marginals are in the order of the parameter's values;
//! `sweep.parquet` is uncompressed with one row group, so the same points give the same
//! bytes. The eager group-by aggregations polars marks deprecated in favour of its lazy
//! engine are used on purpose: the lazy engine would add minutes to a cold build for three
//! aggregations.

use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::grid::{Grid, Kind, ParamValue};
use crate::point::{Metric, PointSummary};

/// The table of `points` (in the order given), one row each.
pub fn frame(grid: &Grid, points: &[PointSummary]) -> Result<DataFrame> {
    let n = points.len();
    let mut cols: Vec<Column> = Vec::new();
    let u64s = |name: &str, f: fn(&PointSummary) -> u64| {
        Column::new(name.into(), points.iter().map(f).collect::<Vec<u64>>())
    };
    let f64s = |name: &str, f: fn(&PointSummary) -> f64| {
        Column::new(name.into(), points.iter().map(f).collect::<Vec<f64>>())
    };
    let opts = |name: &str, f: fn(&PointSummary) -> Option<f64>| {
        Column::new(
            name.into(),
            points
                .iter()
                .map(|p| f(p).filter(|v| !v.is_nan()))
                .collect::<Vec<Option<f64>>>(),
        )
    };
    cols.push(Column::new(
        "point".into(),
        points.iter().map(|p| p.point).collect::<Vec<u32>>(),
    ));
    for (name, kind) in &grid.params {
        let values = points.iter().map(|p| p.params.get(name));
        let col = match kind {
            Kind::Int => Column::new(
                name.into(),
                values
                    .map(|v| match v {
                        Some(ParamValue::Int(i)) => Some(*i),
                        _ => None,
                    })
                    .collect::<Vec<Option<i64>>>(),
            ),
            Kind::Float => Column::new(
                name.into(),
                values
                    .map(|v| v.and_then(ParamValue::as_f64))
                    .collect::<Vec<Option<f64>>>(),
            ),
            Kind::Bool => Column::new(
                name.into(),
                values
                    .map(|v| match v {
                        Some(ParamValue::Bool(b)) => Some(*b),
                        _ => None,
                    })
                    .collect::<Vec<Option<bool>>>(),
            ),
            Kind::Str => Column::new(
                name.into(),
                values
                    .map(|v| match v {
                        Some(ParamValue::Str(s)) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<Option<&str>>>(),
            ),
        };
        cols.push(col);
    }
    cols.extend([
        u64s("events", |p| p.events),
        u64s("orders", |p| p.orders),
        u64s("fills", |p| p.fills),
        u64s("closed_trades", |p| p.closed_trades),
        f64s("pnl", |p| p.pnl),
        f64s("return", |p| p.ret),
        opts("sharpe", |p| p.sharpe),
        opts("sortino", |p| p.sortino),
        f64s("max_drawdown", |p| p.max_drawdown),
        Column::new(
            "max_drawdown_duration_ns".into(),
            points
                .iter()
                .map(|p| p.max_drawdown_duration_ns)
                .collect::<Vec<i64>>(),
        ),
        opts("win_rate", |p| p.win_rate),
        opts("profit_factor", |p| p.profit_factor),
        f64s("turnover", |p| p.turnover),
        f64s("fees", |p| p.fees),
        opts("exposure", |p| p.exposure),
        u64s("findings", |p| p.findings),
    ]);
    Ok(DataFrame::new(n, cols)?)
}

/// `df` sorted best first by `metric` (absent values last, ties by point index), with a
/// `rank` column (from 1) in front.
pub fn rank(df: &DataFrame, metric: Metric) -> Result<DataFrame> {
    let sorted = df.sort(
        [metric.column(), "point"],
        SortMultipleOptions::default()
            .with_order_descending_multi([metric.higher_is_better(), false])
            .with_nulls_last(true)
            .with_maintain_order(true)
            .with_multithreaded(false),
    )?;
    let n = sorted.height();
    let mut cols = vec![Column::new(
        "rank".into(),
        (1..=n as u32).collect::<Vec<u32>>(),
    )];
    cols.extend(sorted.columns().iter().cloned());
    Ok(DataFrame::new(n, cols)?)
}

/// The point indexes of a ranked table, best first.
pub fn ranked_points(ranked: &DataFrame) -> Result<Vec<u32>> {
    Ok(ranked.column("point")?.u32()?.into_no_null_iter().collect())
}

/// One value of one parameter: how the metric did over the points that have it.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginalRow {
    /// `None`: points that do not set the parameter (an explicit list).
    pub value: Option<ParamValue>,
    pub points: u32,
    pub mean: Option<f64>,
    pub best: Option<f64>,
}

/// Per varying parameter (by name), the metric's mean and best per value of it.
pub fn marginals(
    df: &DataFrame,
    grid: &Grid,
    metric: Metric,
) -> Result<Vec<(String, Vec<MarginalRow>)>> {
    let m = metric.column();
    let mut out = Vec::new();
    for name in grid.varying() {
        let g = df.group_by_stable([name])?.select([m]);
        #[allow(deprecated)]
        let (mean, best, count) = (
            g.mean()?,
            if metric.higher_is_better() {
                g.max()?
            } else {
                g.min()?
            },
            g.count()?,
        );
        let keys = mean.select_at_idx(0).expect("the key column");
        let f = |d: &DataFrame| -> Result<Vec<Option<f64>>> {
            let c = d
                .select_at_idx(1)
                .expect("the aggregate")
                .cast(&DataType::Float64)?;
            Ok(c.f64()?.iter().collect())
        };
        let (means, bests) = (f(&mean)?, f(&best)?);
        let counts: Vec<u32> = count
            .select_at_idx(1)
            .expect("the count")
            .cast(&DataType::UInt32)?
            .u32()?
            .into_no_null_iter()
            .collect();
        let mut rows = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            rows.push(MarginalRow {
                value: param_value(keys.get(i)?),
                points: counts[i],
                mean: means[i].filter(|v| !v.is_nan()),
                best: bests[i].filter(|v| !v.is_nan()),
            });
        }
        rows.sort_by(|a, b| match (&a.value, &b.value) {
            (Some(x), Some(y)) => x.total_cmp(y),
            (x, y) => y.is_none().cmp(&x.is_none()),
        });
        out.push((name.to_string(), rows));
    }
    Ok(out)
}

fn param_value(v: AnyValue<'_>) -> Option<ParamValue> {
    match v {
        AnyValue::Null => None,
        AnyValue::Boolean(b) => Some(ParamValue::Bool(b)),
        AnyValue::Int64(i) => Some(ParamValue::Int(i)),
        AnyValue::Float64(f) => Some(ParamValue::Float(f)),
        AnyValue::String(s) => Some(ParamValue::Str(s.to_string())),
        AnyValue::StringOwned(s) => Some(ParamValue::Str(s.to_string())),
        other => Some(ParamValue::Str(other.to_string())),
    }
}

/// Writes `df` to `path` (replaced atomically): uncompressed, one row group.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Uncompressed)
        .with_row_group_size(Some(df.height().max(1)))
        .finish(df)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: u32, fast: f64, sharpe: Option<f64>) -> PointSummary {
        PointSummary {
            point: i,
            params: [("fast".to_string(), ParamValue::Float(fast))].into(),
            events: 10,
            orders: 1,
            fills: 1,
            closed_trades: 0,
            pnl: sharpe.unwrap_or(0.0),
            ret: 0.0,
            sharpe,
            sortino: None,
            max_drawdown: 0.0,
            max_drawdown_duration_ns: 0,
            win_rate: None,
            profit_factor: None,
            turnover: 0.0,
            fees: 0.0,
            exposure: None,
            findings: 0,
        }
    }

    #[test]
    fn ranks_best_first_ties_by_point_absent_last_and_groups_per_value() {
        let list = "[[point]]\nfast = 0.2\n[[point]]\nfast = 0.2\n[[point]]\nfast = 0.1\n[[point]]\nfast = 0.1\n";
        let grid = Grid::parse("g.toml", list).unwrap();
        let points = vec![
            point(0, 0.2, Some(1.0)),
            point(1, 0.2, None),
            point(2, 0.1, Some(2.0)),
            point(3, 0.1, Some(1.0)),
        ];
        let df = frame(&grid, &points).unwrap();
        let ranked = rank(&df, Metric::Sharpe).unwrap();
        assert_eq!(ranked_points(&ranked).unwrap(), [2, 0, 3, 1]);
        let m = marginals(&df, &grid, Metric::Sharpe).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "fast");
        assert_eq!(
            m[0].1,
            [
                MarginalRow {
                    value: Some(ParamValue::Float(0.1)),
                    points: 2,
                    mean: Some(1.5),
                    best: Some(2.0)
                },
                MarginalRow {
                    value: Some(ParamValue::Float(0.2)),
                    points: 2,
                    mean: Some(1.0),
                    best: Some(1.0)
                },
            ]
        );
    }
}
