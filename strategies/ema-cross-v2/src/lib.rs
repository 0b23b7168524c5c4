//! EMA-cross v2: the `ema-cross` signal with a hysteresis band. The fast average must clear
//! the slow one by `band_bps` basis points before the strategy flips, which filters the
//! whipsaw trades v1 makes in a flat market. Same family, different decisions: what a
//! regression run should find.

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Ctx, Event, Payload, PerInstrument, Side, Strategy};

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub fast: f64,
    pub slow: f64,
    pub qty: f64,
    pub warmup: u32,
    /// Required separation of the averages, in basis points of the slow one.
    pub band_bps: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fast: 0.2,
            slow: 0.05,
            qty: 1.0,
            warmup: 32,
            band_bps: 0.25,
        }
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct Leg {
    fast: f64,
    slow: f64,
    seen: u32,
    side: i8,
}

#[derive(Serialize, Deserialize)]
pub struct EmaCrossV2 {
    cfg: Config,
    legs: PerInstrument<Leg>,
}

impl Strategy for EmaCrossV2 {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, String> {
        if !(0.0 < cfg.slow && cfg.slow < cfg.fast && cfg.fast <= 1.0) || cfg.band_bps < 0.0 {
            return Err(format!(
                "need 0 < slow < fast <= 1 and band_bps >= 0, got fast={} slow={} band_bps={}",
                cfg.fast, cfg.slow, cfg.band_bps
            ));
        }
        Ok(EmaCrossV2 {
            cfg,
            legs: PerInstrument::new(),
        })
    }

    fn on_event(&mut self, ev: &Event<'_>, ctx: &mut Ctx<'_>) {
        let Payload::Quote(q) = ev.payload else {
            return;
        };
        let (c, leg) = (&self.cfg, self.legs.get_or_default(ev.header.instrument));
        let mid = ev.px(q.bid_px + q.ask_px) * 0.5;
        if leg.seen == 0 {
            (leg.fast, leg.slow) = (mid, mid);
        }
        leg.fast += c.fast * (mid - leg.fast);
        leg.slow += c.slow * (mid - leg.slow);
        leg.seen = leg.seen.saturating_add(1);
        let band = leg.slow * c.band_bps * 1e-4;
        let want = if leg.fast > leg.slow + band {
            1
        } else if leg.fast < leg.slow - band {
            -1
        } else {
            leg.side
        };
        if leg.seen > c.warmup && want != leg.side {
            let qty = c.qty * (want - leg.side).abs() as f64;
            ctx.market(ev, if want > 0 { Side::Buy } else { Side::Sell }, qty);
            leg.side = want;
        }
    }
}

tapedeck_guest::export_strategy!(EmaCrossV2);
