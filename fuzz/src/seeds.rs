//! Seed inputs made by the code under test: envelopes of every event type (as the file store
//! writes them), the guest batches the host encodes from them, output batches of every kind,
//! and an index file built by `index::rebuild`. The Binance seeds are lines of the shared
//! capture, copied by the command in `fuzz/README.md` (this crate does not need the capture).

use tapedeck::codec::{
    EventBatchWriter, LogLevel, NewOrder, OrderType, Output, OutputBatchWriter, Side, TimeInForce,
};
use tapedeck::event::{Envelope, StreamEncoder};
use tapedeck::store::{EventSink, FileStore, FileStoreOptions};

/// One envelope per event type, two streams, seqs gapless from 1 (an append takes them as is).
const ENVELOPES: &[&str] = &[
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R5","stream_key":"md:binance-spot:BTCUSDT","seq":1,"occurred_at":1723161254087891268,"ingested_at":1723161254087891268,"instrument":"BTCUSDT","event_type":"quote","payload":{"bid_px":"61837.63000000","bid_qty":"3.78826000","ask_px":"61837.64000000","ask_qty":"1.54698000","update_id":50093239212}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R6","stream_key":"md:binance-spot:BTCUSDT","seq":2,"occurred_at":1723161255342000000,"ingested_at":1723161254087896568,"instrument":"BTCUSDT","event_type":"trade","payload":{"price":"61837.63000000","qty":"0.02000000","trade_id":3735683259,"aggressor":"sell"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R7","stream_key":"md:binance-spot:BTCUSDT","seq":3,"occurred_at":1723161254206652067,"ingested_at":1723161254206652067,"instrument":"BTCUSDT","event_type":"book_snapshot","payload":{"update_id":50093239218,"bids":[["61837.63000000","3.78826000"],["61837.62000000","0.61700000"]],"asks":[["61837.64000000","1.92853000"],["61838.04000000","0.32332000"]]}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R8","stream_key":"md:binance-spot:BTCUSDT","seq":4,"occurred_at":1723161255408000000,"ingested_at":1723161254137307667,"instrument":"BTCUSDT","event_type":"book_delta","payload":{"first_update_id":50093239208,"final_update_id":50093239224,"prev_final_update_id":0,"bids":[["61837.63000000","3.78826000"],["61820.99000000","0"]],"asks":[["63100.00000000","2.65627000"]]}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R9","stream_key":"md:binance-spot:BTCUSDT","seq":5,"occurred_at":1723161255408000000,"ingested_at":1723161254137307667,"instrument":"BTCUSDT","event_type":"custom","payload":{"type_name":"book_gap","data":{"expected":50093239225,"got":50093239230,"note":[1.5,-2e-7,null,true]}}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RA","stream_key":"exec:sim:SYM1","seq":1,"occurred_at":1000,"ingested_at":1000,"instrument":"SYM1","tenant_id":"t1","trace_id":"tr-1","idempotency_key":"k-1","event_type":"order_submitted","payload":{"client_order_id":7,"side":"buy","order_type":"limit","tif":"post_only","price":"100.25","qty":"1.5"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RB","stream_key":"exec:sim:SYM1","seq":2,"occurred_at":2000,"ingested_at":2000,"instrument":"SYM1","event_type":"order_acked","payload":{"client_order_id":7,"venue_order_id":90001}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RC","stream_key":"exec:sim:SYM1","seq":3,"occurred_at":3000,"ingested_at":3000,"instrument":"SYM1","event_type":"fill","payload":{"client_order_id":7,"trade_id":55,"side":"buy","liquidity":"maker","is_final":false,"price":"100.25","qty":"0.5","fee":"-0.0125"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RD","stream_key":"exec:sim:SYM1","seq":4,"occurred_at":4000,"ingested_at":4000,"instrument":"SYM1","event_type":"order_cancelled","payload":{"client_order_id":7}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RE","stream_key":"exec:sim:SYM1","seq":5,"occurred_at":5000,"ingested_at":5000,"instrument":"SYM1","event_type":"order_rejected","payload":{"client_order_id":8,"reason":"insufficient balance \u00e9\n"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RF","stream_key":"exec:sim:SYM1","seq":6,"occurred_at":6000,"ingested_at":6000,"instrument":"SYM1","event_type":"position","payload":{"qty":"-0.5","avg_price":"100.25","realized_pnl":"1.75"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RG","stream_key":"exec:sim:SYM1","seq":7,"occurred_at":7000,"ingested_at":7000,"instrument":"USDT","event_type":"balance","payload":{"total":"1000","free":"900.5","locked":"99.5"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RH","stream_key":"exec:sim:SYM1","seq":8,"occurred_at":8000,"ingested_at":8000,"instrument":"SYM1","event_type":"risk_decision","payload":{"client_order_id":9,"decision":"reduce","reason_code":"max_position"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RJ","stream_key":"exec:sim:SYM1","seq":9,"occurred_at":9000,"ingested_at":9000,"event_type":"guardrail_transition","payload":{"prev_mode":"normal","next_mode":"reduce_only","trigger_metric":"drawdown","value":"0.051","reason":"drawdown above 5%"}}"#,
    r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2RK","stream_key":"exec:sim:SYM1","seq":10,"occurred_at":10000,"ingested_at":10000,"instrument":"SYM1","event_type":"funding","payload":{"rate":"0.0001","mark_price":"100.3","payment":"-0.01003"}}"#,
];

/// The seeds of one target, as (file name, bytes).
pub fn for_target(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "envelope_jsonl" => envelope_seeds(),
        "codec_events" => event_batch_seeds(),
        "codec_outputs" => output_batch_seeds(),
        "index_reader" => index_seeds(),
        // Lines of the shared capture, copied once (fuzz/README.md).
        "binance_line" => Vec::new(),
        other => panic!("no seeds for fuzz target {other:?}"),
    }
}

/// The seed envelopes, parsed (a seed that does not parse is a bug in this file).
pub fn envelopes() -> Vec<Envelope> {
    ENVELOPES
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("seed {l}: {e}")))
        .collect()
}

fn envelope_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = envelopes()
        .iter()
        .map(|e| {
            let name = format!("{}.jsonl", e.body.event_type());
            (
                name,
                format!("{}\n", serde_json::to_string(e).unwrap()).into(),
            )
        })
        .collect();
    out.push(("all.jsonl".into(), (ENVELOPES.join("\n") + "\n").into()));
    out
}

/// Each envelope encoded the way replay encodes it (stream id 1, the instrument's id).
pub fn encoded(envelopes: &[Envelope]) -> Vec<u8> {
    let mut enc = StreamEncoder::new(1);
    let mut w = EventBatchWriter::new(Vec::new());
    for e in envelopes {
        enc.encode(e, &mut w).expect("seed envelopes encode");
    }
    w.finish()
}

/// Each envelope packed alone as a store index keeps it (stream id 0).
pub fn records(envelopes: &[Envelope]) -> Vec<Vec<u8>> {
    let mut enc = StreamEncoder::new(0);
    envelopes
        .iter()
        .map(|e| {
            let mut w = EventBatchWriter::new(Vec::new());
            enc.encode(e, &mut w).expect("seed envelopes encode");
            w.records().next().expect("one record").to_vec()
        })
        .collect()
}

fn event_batch_seeds() -> Vec<(String, Vec<u8>)> {
    let all = envelopes();
    let mut out: Vec<(String, Vec<u8>)> = all
        .iter()
        .map(|e| {
            let name = format!("{}.bin", e.body.event_type());
            (name, encoded(std::slice::from_ref(e)))
        })
        .collect();
    out.push(("all.bin".into(), encoded(&all)));
    out.push(("empty.bin".into(), encoded(&[])));
    out
}

fn output_batch_seeds() -> Vec<(String, Vec<u8>)> {
    let order = NewOrder {
        instrument: 3,
        client_order_id: 42,
        side: Side::Sell,
        order_type: OrderType::Limit,
        tif: TimeInForce::Ioc,
        price: 6_183_763,
        qty: 2_000_000,
        px_scale: 2,
        qty_scale: 8,
    };
    let outputs = [
        Output::NewOrder(order),
        Output::Cancel {
            instrument: 3,
            client_order_id: 42,
        },
        Output::Log {
            level: LogLevel::Warn,
            message: "spread too wide: 0.5",
        },
        Output::Metric {
            name: "ema_fast",
            value: 61_837.625,
        },
    ];
    let one = |o: &Output<'_>| {
        let mut w = OutputBatchWriter::new(Vec::new());
        w.push(17, o);
        w.finish()
    };
    let mut all = OutputBatchWriter::new(Vec::new());
    for (i, o) in outputs.iter().enumerate() {
        all.push(i as u64 + 1, o);
    }
    vec![
        ("new_order.bin".into(), one(&outputs[0])),
        ("cancel.bin".into(), one(&outputs[1])),
        ("log.bin".into(), one(&outputs[2])),
        ("metric.bin".into(), one(&outputs[3])),
        ("all.bin".into(), all.finish()),
        (
            "empty.bin".into(),
            OutputBatchWriter::new(Vec::new()).finish(),
        ),
    ]
}

/// Index files made by `index::rebuild` from the seed envelopes, one per log day, each behind
/// the index target's mode byte 0 (the bytes are the file).
fn index_seeds() -> Vec<(String, Vec<u8>)> {
    let root = crate::scratch_dir("index-seeds");
    let _ = std::fs::remove_dir_all(&root);
    let mut store =
        FileStore::create(&root, FileStoreOptions::default()).expect("creating a seed store");
    store
        .append(&envelopes())
        .expect("appending the seed envelopes");
    tapedeck::store::index::rebuild(&root, None).expect("building the seed index");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("index")).expect("the seed index") {
        let path = entry.expect("an index entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let mut bytes = vec![0u8];
            bytes.extend(std::fs::read(&path).expect("reading a seed index file"));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, bytes));
        }
    }
    out.sort();
    std::fs::remove_dir_all(&root).expect("removing the seed store");
    out
}
