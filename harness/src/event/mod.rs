//! The event envelope: one shape for every store (files, Postgres, ClickHouse) and the source
//! of the packed batches guests see.
//!
//! Prices, quantities and amounts are decimals written as strings (`"65432.10"`), parsed into
//! exact fixed-point mantissas; each event's batch scales are the largest its fields use, so
//! nothing is rounded on the way to a guest.
//!
//! - [`decimal`]: [`Dec`], exact decimals.
//! - [`body`]: [`Body`], the typed payload per event type.
//! - [`envelope`]: [`Envelope`], with tenancy and correlation.
//! - [`encode`]: envelopes into guest batches ([`StreamEncoder`], [`instrument_id`]).
//! - [`ulid`]: derived event ids.

mod body;
mod decimal;
mod encode;
mod envelope;
mod ulid;

pub use body::{Body, LevelPair, LiquidityName, OrderTypeName, SideName, TifName, VerdictName};
pub use decimal::Dec;
pub use encode::{Scratch, StreamEncoder, instrument_id, instrument_table};
pub use envelope::{Correlation, Envelope, EnvelopeFields, Tenancy};
pub use ulid::derived_ulid;

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_guest::codec::{self, Payload};

    #[test]
    fn decimals_round_trip_exactly() {
        for s in [
            "0",
            "1",
            "-1",
            "65432.10",
            "0.00012300",
            "-0.5",
            "123456789.12345678",
        ] {
            let d: Dec = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("1.50".parse::<Dec>().unwrap().at(4), Some(15000));
        assert_eq!(
            "1.5".parse::<Dec>().unwrap().at(0),
            None,
            "never rounds down"
        );
        for bad in [
            "",
            ".",
            "1.2.3",
            "abc",
            "1e5",
            "--1",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Dec>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn envelopes_serialize_flat_and_back() {
        let e = Envelope::new(
            "md:binance-spot:BTCUSDT",
            7,
            1_723_075_200_000_000_000,
            Some("BTCUSDT"),
            Body::Quote {
                bid_px: "1.10".parse().unwrap(),
                bid_qty: "2".parse().unwrap(),
                ask_px: "1.2".parse().unwrap(),
                ask_qty: "3".parse().unwrap(),
                update_id: None,
            },
        );
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.contains(r#""event_type":"quote","payload":{"bid_px":"1.10""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
        assert_eq!(e.event_id.len(), 26);
        assert_eq!(e.event_id, derived_ulid(e.occurred_at, &e.stream_key, 7));
        assert_ne!(e.event_id, derived_ulid(e.occurred_at, &e.stream_key, 8));
    }

    #[test]
    fn encoding_uses_the_largest_scale_of_the_event() {
        let e = Envelope::new(
            "s",
            1,
            0,
            None,
            Body::Quote {
                bid_px: "1.10".parse().unwrap(),
                bid_qty: "2".parse().unwrap(),
                ask_px: "1.125".parse().unwrap(),
                ask_qty: "3.5".parse().unwrap(),
                update_id: None,
            },
        );
        let mut w = codec::EventBatchWriter::new(Vec::new());
        e.encode_into(&mut w, 1, 2, &mut Scratch::default())
            .unwrap();
        let bytes = w.finish();
        let ev = codec::EventBatch::new(&bytes)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((ev.header.px_scale, ev.header.qty_scale), (3, 1));
        assert_eq!(
            ev.payload,
            Payload::Quote(codec::Quote {
                bid_px: 1100,
                bid_qty: 20,
                ask_px: 1125,
                ask_qty: 35
            })
        );
    }

    #[test]
    fn unknown_event_types_and_fields_are_refused() {
        let base = r#"{"event_id":"x","stream_key":"s","seq":1,"occurred_at":0,"ingested_at":0,"#;
        let err = serde_json::from_str::<Envelope>(&format!(
            r#"{base}"event_type":"teleport","payload":{{}}}}"#
        ))
        .unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
        let err = serde_json::from_str::<Envelope>(&format!(
            r#"{base}"event_type":"order_cancelled","payload":{{"client_order_id":"x"}}}}"#
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("client_order_id") || err.to_string().contains("invalid type"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod quote_update_id {
    use super::*;

    #[test]
    fn quote_update_ids_survive_a_round_trip() {
        let line = r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R5","stream_key":"md:binance-spot:BTCUSDT","seq":1,"occurred_at":1723161254087891268,"ingested_at":1723161254087891268,"instrument":"BTCUSDT","event_type":"quote","payload":{"bid_px":"61837.63000000","bid_qty":"3.78826000","ask_px":"61837.64000000","ask_qty":"1.54698000","update_id":50093239212}}"#;
        let e: Envelope = serde_json::from_str(line).unwrap();
        assert!(
            matches!(
                e.body,
                Body::Quote {
                    update_id: Some(50093239212),
                    ..
                }
            ),
            "{:?}",
            e.body
        );
    }
}
