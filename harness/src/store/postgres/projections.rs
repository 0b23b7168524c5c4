//! The projections an append keeps current, in its transaction: `fills`, `orders_current`,
//! `positions_current` and `balances_current`. Each is one SQL statement in `sql/`, read from
//! the batch in hand (the `ev` relation of `sql/batch_as_ev.sql`), never from the log.
//!
//! Invariants: every statement binds the same eight parameters ($1 the stream, $2..$8 the
//! [`Projected`] columns); a statement runs only when the batch holds an event type it reads
//! ([`PROJECTED`] lists them all); they run in table order, `fills` before `orders_current`
//! (which sums the fills table for `filled_qty`).

use std::collections::BTreeSet;

use super::connect::pg;
use super::rows::{Projected, Rows};
use crate::error::Result;

/// One projection statement, `sql/batch_as_ev.sql` followed by the file named.
macro_rules! projection_sql {
    ($file:literal) => {
        concat!(
            include_str!("sql/batch_as_ev.sql"),
            include_str!(concat!("sql/", $file))
        )
    };
}

/// A projection update: the event types that touch it, its SQL, its table (for errors).
struct Projection {
    touches: &'static [&'static str],
    sql: &'static str,
    table: &'static str,
}

/// Projection updates from the events just inserted, in the order they run.
const PROJECTIONS: &[Projection] = &[
    Projection {
        touches: &["fill"],
        sql: projection_sql!("insert_fills.sql"),
        table: "fills",
    },
    Projection {
        touches: &[
            "order_submitted",
            "order_acked",
            "order_rejected",
            "order_cancelled",
            "fill",
        ],
        sql: projection_sql!("upsert_orders_current.sql"),
        table: "orders_current",
    },
    Projection {
        touches: &["position"],
        sql: projection_sql!("upsert_positions_current.sql"),
        table: "positions_current",
    },
    Projection {
        touches: &["balance"],
        sql: projection_sql!("upsert_balances_current.sql"),
        table: "balances_current",
    },
];

/// Runs the projection updates the batch `rows` (as stored: kept rows, final seqs) touches.
/// `ctx` names the append for errors.
pub(super) async fn update_projections(
    tx: &mut sqlx::PgConnection,
    stream: &str,
    rows: &Rows,
    ctx: impl Fn(&str) -> String,
) -> Result<()> {
    let ev: Projected = rows.projected();
    let types: BTreeSet<&str> = ev.event_type.iter().map(String::as_str).collect();
    for p in PROJECTIONS {
        if p.touches.iter().any(|t| types.contains(t)) {
            sqlx::query(p.sql)
                .bind(stream)
                .bind(&ev.seq)
                .bind(&ev.event_type)
                .bind(&ev.instrument)
                .bind(&ev.tenant_id)
                .bind(&ev.event_id)
                .bind(&ev.payload)
                .bind(&ev.occurred)
                .execute(&mut *tx)
                .await
                .map_err(pg(ctx(p.table)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::rows::PROJECTED;
    use super::*;

    #[test]
    fn projected_types_are_the_ones_projections_touch() {
        let touched: BTreeSet<&str> = PROJECTIONS
            .iter()
            .flat_map(|p| p.touches.iter().copied())
            .collect();
        let listed: BTreeSet<&str> = PROJECTED.iter().copied().collect();
        assert_eq!(touched, listed);
    }

    #[test]
    fn projection_statements_read_the_batch_relation() {
        for p in PROJECTIONS {
            assert!(p.sql.contains("WITH ev AS ("), "{}", p.table);
            assert!(p.sql.contains(p.table), "{}", p.table);
        }
    }
}
