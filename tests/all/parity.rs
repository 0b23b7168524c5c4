//! The same guest source natively and in Wasm: identical outputs and PnL; snapshot/restore
//! continues identically.

use tapedeck_dev::sim::MarketSim;
use tapedeck_dev::synth::QuoteGen;
use tapedeck_guest::driver::StrategyDriver;
use tapedeck_test_guests as guests;

use super::{load, rt};

#[test]
fn ema_cross_native_and_wasm_agree_on_every_intent_and_pnl() {
    let batches = QuoteGen::new(11, 8).batches(200_000, 256);
    let mut native = StrategyDriver::<ema_cross::EmaCross>::init("").unwrap();
    let mut wasm = rt().instantiate(&load(guests::EMA_CROSS)).unwrap();
    wasm.init("").unwrap();
    let (mut sim_n, mut sim_w) = (MarketSim::default(), MarketSim::default());
    for b in &batches {
        let n = native.on_events(b).to_vec();
        let w = wasm.on_events(b).unwrap();
        assert_eq!(n, w, "outputs differ");
        sim_n.apply(b, &n);
        sim_w.apply(b, &w);
    }
    assert!(
        sim_w.orders > 100,
        "the strategy trades ({} orders)",
        sim_w.orders
    );
    assert_eq!(sim_n, sim_w);
    assert_eq!(sim_n.pnl().to_bits(), sim_w.pnl().to_bits());
}

#[test]
fn v2_makes_different_decisions_than_v1() {
    let batches = QuoteGen::new(11, 8).batches(50_000, 256);
    let mut v1 = rt().instantiate(&load(guests::EMA_CROSS)).unwrap();
    let mut v2 = rt().instantiate(&load(guests::EMA_CROSS_V2)).unwrap();
    v1.init("").unwrap();
    v2.init("").unwrap();
    let (mut s1, mut s2) = (MarketSim::default(), MarketSim::default());
    for b in &batches {
        s1.apply(b, &v1.on_events(b).unwrap());
        s2.apply(b, &v2.on_events(b).unwrap());
    }
    assert!(
        s2.orders > 0 && s2.orders < s1.orders,
        "v1 {} orders, v2 {}",
        s1.orders,
        s2.orders
    );
}

#[test]
fn snapshot_then_restore_into_a_fresh_instance_continues_identically() {
    let batches = QuoteGen::new(5, 4).batches(40_000, 200);
    let (head, tail) = batches.split_at(batches.len() / 2);
    let module = load(guests::EMA_CROSS);
    let mut straight = rt().instantiate(&module).unwrap();
    straight.init("").unwrap();
    for b in head {
        straight.on_events(b).unwrap();
    }
    let snap = straight.snapshot().unwrap();
    let mut restored = rt().instantiate(&module).unwrap();
    restored.restore(&snap).unwrap();
    let mut outputs = 0;
    for b in tail {
        let a = straight.on_events(b).unwrap();
        let r = restored.on_events(b).unwrap();
        assert_eq!(a, r);
        outputs += a.len();
    }
    assert!(outputs > tail.len() * 16, "the tail produced intents");
    assert_eq!(straight.snapshot().unwrap(), restored.snapshot().unwrap());
    // The snapshot also restores natively: one format on both sides.
    assert!(StrategyDriver::<ema_cross::EmaCross>::restore(&snap).is_ok());
    let err = restored.restore(b"{not json").unwrap_err();
    assert!(err.to_string().contains("refused the snapshot"), "{err}");
}
