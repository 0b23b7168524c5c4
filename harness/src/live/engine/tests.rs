use serde_json::{Value, json};

use super::switch::compare;
use super::types::*;
use crate::decision::{Decision, Output};
use crate::event::{Body, Correlation, Envelope};

fn exec(command: &str, cause: &str) -> Envelope {
    let mut e = Envelope::new(
        "exec:paper:BTCUSDT",
        1,
        0,
        Some("BTCUSDT"),
        Body::OrderCancelled { client_order_id: 1 },
    );
    e.correlation = Correlation {
        causation_id: Some(cause.into()),
        command_id: Some(command.into()),
        ..Default::default()
    };
    e
}

fn audit(kind: &str, data: Value) -> Envelope {
    Envelope::new(
        "live:s",
        1,
        0,
        None,
        Body::Custom {
            type_name: kind.into(),
            data,
        },
    )
}

#[test]
fn a_restart_resumes_from_what_the_session_recorded() {
    let mut r = Resume::default();
    r.visit("s", &exec("live:s:md:x:A:40:0", "md:x:A:41"));
    r.visit("s", &exec("live:s:md:x:A:12:0", "md:x:A:12"));
    // Another session's orders, and events without ids, are not this session's.
    r.visit("s", &exec("live:other:md:x:A:90:0", "md:x:A:90"));
    r.visit("s", &exec("manual-7", "md:x:A:95"));
    assert_eq!(r.executed.get("md:x:A"), Some(&41));

    r.visit(
        "s",
        &audit(
            "live_started",
            json!({ "strategy": { "sha256": "a", "config": "" } }),
        ),
    );
    r.visit(
        "s",
        &audit(
            "live_stream",
            json!({ "stream": "md:x:A", "module": "a", "config": "" }),
        ),
    );
    r.visit(
        "s",
        &audit(
            "live_swap",
            json!({ "to": "b", "to_config": "{}", "streams": { "md:x:A": { "seq": 5 } } }),
        ),
    );
    assert_eq!(r.active, Some(("b".into(), "{}".into())));
    // A rollback after a trap changes the stream's module, not the session's.
    r.visit("s", &audit("live_rollback", json!({ "automatic": true, "to": "a", "to_config": "", "streams": { "md:x:A": { "seq": 9 } } })));
    assert_eq!(r.module.get("md:x:A"), Some(&("a".into(), "".into())));
    assert_eq!(r.active, Some(("b".into(), "{}".into())));
}

#[test]
fn the_first_divergence_names_both_decisions() {
    let d = |seq, id| Decision {
        seq,
        time_ns: 0,
        output: Output::Cancel {
            instrument: 0,
            client_order_id: id,
        },
    };
    let mut seen = Divergence::default();
    let names = tapedeck_guest::Instruments::default();
    assert!(!compare(&mut seen, &[d(1, 1)], &[d(1, 1)], &names));
    assert!(compare(&mut seen, &[d(3, 1), d(4, 2)], &[d(3, 1)], &names));
    assert!(compare(&mut seen, &[], &[d(9, 9)], &names));
    assert_eq!((seen.compared_batches, seen.divergent_batches), (3, 2));
    let first = seen.first.unwrap();
    assert_eq!(first["seq"], 4);
    assert_eq!(first["active"]["output"]["client_order_id"], 2);
    assert_eq!(first["shadow"], Value::Null);
}
