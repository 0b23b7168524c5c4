//! Strategy outputs as JSON, for decision logs and reports.

use serde_json::{Value, json};
use tapedeck_guest::codec::{Decimal, Output};

use crate::event::Dec;

/// One output as a JSON object with an `output` tag; prices and quantities as decimal strings.
pub fn to_json(o: &Output<'_>) -> Value {
    match o {
        Output::NewOrder(n) => json!({
            "output": "new_order",
            "instrument": n.instrument,
            "client_order_id": n.client_order_id,
            "side": format!("{:?}", n.side).to_lowercase(),
            "order_type": format!("{:?}", n.order_type).to_lowercase(),
            "tif": format!("{:?}", n.tif).to_lowercase(),
            "price": Dec(Decimal::new(n.price, n.px_scale)).to_string(),
            "qty": Dec(Decimal::new(n.qty, n.qty_scale)).to_string(),
        }),
        Output::Cancel {
            instrument,
            client_order_id,
        } => {
            json!({ "output": "cancel", "instrument": instrument, "client_order_id": client_order_id })
        }
        Output::Log { level, message } => {
            json!({ "output": "log", "level": format!("{level:?}").to_lowercase(), "message": message })
        }
        Output::Metric { name, value } => {
            json!({ "output": "metric", "name": name, "value": value })
        }
    }
}
