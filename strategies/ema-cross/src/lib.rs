//! EMA-cross: per instrument, a fast and a slow exponential moving average of the mid price;
//! buy when the fast one crosses above the slow one, sell when it crosses below.

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Ctx, Event, Payload, PerInstrument, Side, Strategy};

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub fast: f64,
    pub slow: f64,
    pub qty: f64,
    /// Quotes to see before trading an instrument.
    pub warmup: u32,
    /// Trade with limit orders joining the touch (a buy at the bid, a sell at the ask)
    /// instead of market orders, cancelling the previous one first.
    #[serde(skip_serializing_if = "is_false")]
    pub join: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fast: 0.2,
            slow: 0.05,
            qty: 1.0,
            warmup: 32,
            join: false,
        }
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct Leg {
    fast: f64,
    slow: f64,
    seen: u32,
    /// +1 long, -1 short, 0 flat.
    side: i8,
    /// The resting limit order, with `join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct EmaCross {
    cfg: Config,
    legs: PerInstrument<Leg>,
}

impl Strategy for EmaCross {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, String> {
        if !(0.0 < cfg.slow && cfg.slow < cfg.fast && cfg.fast <= 1.0) {
            return Err(format!(
                "need 0 < slow < fast <= 1, got fast={} slow={}",
                cfg.fast, cfg.slow
            ));
        }
        Ok(EmaCross {
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
        let want = if leg.fast > leg.slow { 1 } else { -1 };
        if leg.seen > c.warmup && want != leg.side {
            // Flip (or open): trade enough to go from the current side to the wanted one.
            let qty = c.qty * (want - leg.side).abs() as f64;
            let side = if want > 0 { Side::Buy } else { Side::Sell };
            if c.join {
                if let Some(id) = leg.open.take() {
                    ctx.cancel(ev.header.instrument, id);
                }
                let px = if want > 0 { q.bid_px } else { q.ask_px };
                leg.open = Some(ctx.limit(ev, side, ev.px(px), qty));
            } else {
                ctx.market(ev, side, qty);
            }
            leg.side = want;
        }
    }
}

tapedeck_guest::export_strategy!(EmaCross);
