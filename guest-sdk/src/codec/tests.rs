use super::*;
use proptest::prelude::*;

/// Owned backing data for one arbitrary event (the codec types borrow).
#[derive(Debug, Clone)]
struct Owned {
    header: EventHeader,
    kind: EventKind,
    ints: [i64; 6],
    ids: [u64; 3],
    bytes: [u8; 4],
    texts: [String; 4],
    json: Vec<u8>,
    bids: Vec<Level>,
    asks: Vec<Level>,
}

impl Owned {
    fn payload(&self) -> Payload<'_> {
        let [a, b, c, d, e, f] = self.ints;
        let [i, j, k] = self.ids;
        let dec = |m: i64, s: u8| Decimal::new(m, s % 19);
        let side = if self.bytes[0].is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let t = &self.texts;
        match self.kind {
            EventKind::Quote => Payload::Quote(Quote {
                bid_px: a,
                bid_qty: b,
                ask_px: c,
                ask_qty: d,
            }),
            EventKind::Trade => Payload::Trade(Trade {
                price: a,
                qty: b,
                trade_id: i,
                aggressor: Aggressor::ALL[self.bytes[1] as usize % 3],
            }),
            EventKind::BookSnapshot => Payload::BookSnapshot(BookSnapshot {
                update_id: i,
                bids: Levels::Slice(&self.bids),
                asks: Levels::Slice(&self.asks),
            }),
            EventKind::BookDelta => Payload::BookDelta(BookDelta {
                first_update_id: i,
                final_update_id: j,
                prev_final_update_id: k,
                bids: Levels::Slice(&self.bids),
                asks: Levels::Slice(&self.asks),
            }),
            EventKind::OrderSubmitted => Payload::OrderSubmitted(OrderSubmitted {
                client_order_id: i,
                side,
                order_type: OrderType::ALL[self.bytes[1] as usize % 2],
                tif: TimeInForce::ALL[self.bytes[2] as usize % 4],
                price: a,
                qty: b,
            }),
            EventKind::OrderAcked => Payload::OrderAcked(OrderAcked {
                client_order_id: i,
                venue_order_id: j,
            }),
            EventKind::OrderRejected => Payload::OrderRejected(OrderRejected {
                client_order_id: i,
                reason: &t[0],
            }),
            EventKind::OrderCancelled => {
                Payload::OrderCancelled(OrderCancelled { client_order_id: i })
            }
            EventKind::Fill => Payload::Fill(Fill {
                client_order_id: i,
                trade_id: j,
                side,
                liquidity: Liquidity::ALL[self.bytes[1] as usize % 3],
                is_final: self.bytes[2] % 2 == 1,
                price: a,
                qty: b,
                fee: dec(c, self.bytes[3]),
            }),
            EventKind::Position => Payload::Position(Position {
                qty: a,
                avg_price: b,
                realized_pnl: dec(c, self.bytes[3]),
            }),
            EventKind::Balance => Payload::Balance(Balance {
                total: dec(a, 1),
                free: dec(b, 2),
                locked: dec(c, self.bytes[3]),
            }),
            EventKind::RiskDecision => Payload::RiskDecision(RiskDecision {
                client_order_id: i,
                verdict: RiskVerdict::ALL[self.bytes[1] as usize % 3],
                reason_code: &t[0],
            }),
            EventKind::GuardrailTransition => Payload::GuardrailTransition(GuardrailTransition {
                prev_mode: &t[0],
                next_mode: &t[1],
                trigger_metric: &t[2],
                value: dec(e, self.bytes[3]),
                reason: &t[3],
            }),
            EventKind::Funding => Payload::Funding(Funding {
                rate: dec(d, 8),
                mark_price: e,
                payment: dec(f, self.bytes[3]),
            }),
            EventKind::Custom => Payload::Custom(Custom {
                type_name: &t[0],
                json: &self.json,
            }),
        }
    }
}

fn level() -> impl Strategy<Value = Level> {
    (any::<i64>(), any::<i64>()).prop_map(|(price, qty)| Level { price, qty })
}

fn owned() -> impl Strategy<Value = Owned> {
    let header = (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<i64>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(
            |(stream, instrument, seq, time_ns, px_scale, qty_scale)| EventHeader {
                stream,
                instrument,
                seq,
                time_ns,
                px_scale,
                qty_scale,
            },
        );
    (
        header,
        proptest::sample::select(EventKind::ALL),
        any::<[i64; 6]>(),
        any::<[u64; 3]>(),
        any::<[u8; 4]>(),
        any::<[String; 4]>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(level(), 0..8),
        proptest::collection::vec(level(), 0..8),
    )
        .prop_map(
            |(header, kind, ints, ids, bytes, texts, json, bids, asks)| Owned {
                header,
                kind,
                ints,
                ids,
                bytes,
                texts,
                json,
                bids,
                asks,
            },
        )
}

fn encode(events: &[Owned]) -> Vec<u8> {
    let mut w = EventBatchWriter::new(Vec::new());
    for e in events {
        w.push(&e.header, &e.payload());
    }
    w.finish()
}

proptest! {
    #[test]
    fn event_batches_round_trip(events in proptest::collection::vec(owned(), 0..24)) {
        let bytes = encode(&events);
        let decoded = EventBatch::new(&bytes).unwrap().collect_all().unwrap();
        prop_assert_eq!(decoded.len(), events.len());
        for (d, e) in decoded.iter().zip(&events) {
            prop_assert_eq!(d.header, e.header);
            prop_assert_eq!(d.payload, e.payload());
        }
        // The hot-path walk sees exactly what the iterator sees.
        let mut walked = Vec::new();
        EventBatch::new(&bytes).unwrap().for_each_event(|ev| walked.push(*ev)).unwrap();
        prop_assert_eq!(walked, decoded);
    }

    #[test]
    fn truncated_batches_are_errors_not_panics(events in proptest::collection::vec(owned(), 1..6), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&events);
        let cut = cut.index(bytes.len());
        let result = EventBatch::new(&bytes[..cut]).and_then(|b| b.collect_all());
        let walked = EventBatch::new(&bytes[..cut]).and_then(|b| b.for_each_event(|_| {}));
        prop_assert!(walked.is_err(), "the hot-path walk accepted a batch cut at {}", cut);
        prop_assert!(result.is_err(), "a batch cut at {} of {} bytes decoded", cut, bytes.len());
    }

    #[test]
    fn output_batches_round_trip(seqs in proptest::collection::vec(any::<u64>(), 0..16), msg in ".*", v in any::<f64>()) {
        let mut w = OutputBatchWriter::new(Vec::new());
        let order = NewOrder { instrument: 3, client_order_id: 9, side: Side::Sell, order_type: OrderType::Limit, tif: TimeInForce::PostOnly, price: -5, qty: 7, px_scale: 2, qty_scale: 8 };
        let outs = [
            Output::NewOrder(order),
            Output::Cancel { instrument: 1, client_order_id: 2 },
            Output::Log { level: LogLevel::Warn, message: &msg },
            Output::Metric { name: "m", value: v },
        ];
        for (i, s) in seqs.iter().enumerate() {
            w.push(*s, &outs[i % 4]);
        }
        let bytes = w.finish();
        let got: Vec<_> = OutputBatch::new(&bytes).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got.len(), seqs.len());
        for (i, r) in got.iter().enumerate() {
            prop_assert_eq!(r.cause_seq, seqs[i]);
            match (r.output, outs[i % 4]) {
                (Output::Metric { value: a, .. }, Output::Metric { value: b, .. }) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }
}

#[test]
fn header_errors_say_what_is_wrong() {
    let good = encode(&[]);
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(
        EventBatch::new(&bad),
        Err(CodecError::BadMagic { .. })
    ));
    let mut bad = good.clone();
    bad[4] = 9;
    let err = EventBatch::new(&bad).err().unwrap();
    assert_eq!(
        err,
        CodecError::LayoutVersion {
            found: 9,
            expected: LAYOUT_VERSION
        }
    );
    assert!(err.to_string().contains("v9"));
    assert!(matches!(
        EventBatch::new(&good[..10]),
        Err(CodecError::Truncated { .. })
    ));
    // An output batch is not an event batch.
    let out = OutputBatchWriter::new(Vec::new()).finish();
    assert!(matches!(
        EventBatch::new(&out),
        Err(CodecError::BadMagic { .. })
    ));
}

#[test]
fn count_must_match_records() {
    let h = EventHeader {
        seq: 1,
        ..Default::default()
    };
    let mut w = EventBatchWriter::new(Vec::new());
    w.push(
        &h,
        &Payload::OrderCancelled(OrderCancelled { client_order_id: 1 }),
    );
    let mut bytes = w.finish();
    bytes[8] = 2;
    let walked = EventBatch::new(&bytes).unwrap().for_each_event(|_| {});
    assert_eq!(
        walked.unwrap_err(),
        CodecError::CountMismatch {
            header: 2,
            found: 1
        }
    );
    let r = EventBatch::new(&bytes).unwrap().collect_all();
    assert_eq!(
        r.unwrap_err(),
        CodecError::CountMismatch {
            header: 2,
            found: 1
        }
    );
    bytes[8] = 0;
    let r = EventBatch::new(&bytes).unwrap().collect_all();
    assert!(matches!(
        r,
        Err(CodecError::CountMismatch { header: 0, .. })
    ));
}

#[test]
fn unknown_kinds_and_enum_values_are_refused() {
    let h = EventHeader {
        seq: 1,
        ..Default::default()
    };
    let mut w = EventBatchWriter::new(Vec::new());
    w.push(
        &h,
        &Payload::Trade(Trade {
            price: 1,
            qty: 1,
            trade_id: 1,
            aggressor: Aggressor::Buy,
        }),
    );
    let good = w.finish();
    let mut bad = good.clone();
    bad[BATCH_HEADER_LEN + 4] = 200;
    assert_eq!(
        EventBatch::new(&bad).unwrap().collect_all().unwrap_err(),
        CodecError::UnknownKind { at: 16, kind: 200 }
    );
    let mut bad = good.clone();
    *bad.last_mut().unwrap() = 7; // the aggressor byte
    assert!(matches!(
        EventBatch::new(&bad).unwrap().collect_all(),
        Err(CodecError::BadEnum {
            field: "aggressor",
            value: 7,
            ..
        })
    ));
}

#[test]
fn push_record_refuses_a_record_that_does_not_decode() {
    // See: fuzz target index_reader, fuzz/corpus/index_reader/crash-record-does-not-decode
    // (a damaged index record passed the length and kind checks, and the batch it joined made
    // the guest's driver trap: "batch truncated: 51723 bytes needed at offset 62").
    let h = EventHeader {
        seq: 1,
        ..Default::default()
    };
    let mut w = EventBatchWriter::new(Vec::new());
    w.push(
        &h,
        &Payload::OrderRejected(OrderRejected {
            client_order_id: 8,
            reason: "insufficient balance",
        }),
    );
    let record = w.records().next().unwrap().to_vec();
    let mut into = EventBatchWriter::new(Vec::new());
    into.push_record(&record, 3).unwrap();
    let mut long_string = record.clone();
    long_string[EVENT_HEADER_LEN + 8] = 0xff; // the reason's length
    let mut bad_utf8 = record.clone();
    *bad_utf8.last_mut().unwrap() = 0xff;
    let mut bad_kind = record.clone();
    bad_kind[4] = EventKind::Trade as u8; // a trade's fields do not fill the record
    for bad in [&long_string, &bad_utf8, &bad_kind] {
        assert!(into.push_record(bad, 3).is_err(), "{bad:?} accepted");
    }
    assert_eq!(into.count(), 1);
    let events = EventBatch::new(into.as_bytes())
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(events[0].header.stream, 3);
}
