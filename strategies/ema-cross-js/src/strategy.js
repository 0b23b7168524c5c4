// EMA-cross: per instrument, a fast and a slow exponential moving average of the mid price;
// buy when the fast one crosses above the slow one, sell when it crosses below. The same
// decisions as the Rust `strategies/ema-cross`, bit for bit.

import { Strategy, QUOTE, BUY, SELL } from "tapedeck";

export default class EmaCross extends Strategy {
  static CONFIG = { fast: 0.2, slow: 0.05, qty: 1.0, warmup: 32 };

  constructor(cfg) {
    super();
    if (!(0.0 < cfg.slow && cfg.slow < cfg.fast && cfg.fast <= 1.0)) {
      throw `need 0 < slow < fast <= 1, got fast=${cfg.fast} slow=${cfg.slow}`;
    }
    this.cfg = cfg;
    // instrument id -> { fast, slow, seen, side (+1 long, -1 short, 0 flat) }
    this.legs = {};
  }

  onEvent(ev, ctx) {
    if (ev.kind !== QUOTE) return;
    const q = ev.payload, c = this.cfg;
    const mid = ev.px(q.bidPx + q.askPx) * 0.5;
    let leg = this.legs[ev.instrument];
    if (leg === undefined) leg = this.legs[ev.instrument] = { fast: mid, slow: mid, seen: 0, side: 0 };
    leg.fast += c.fast * (mid - leg.fast);
    leg.slow += c.slow * (mid - leg.slow);
    leg.seen += 1;
    const want = leg.fast > leg.slow ? 1 : -1;
    if (leg.seen > c.warmup && want !== leg.side) {
      // Flip (or open): trade enough to go from the current side to the wanted one.
      ctx.market(ev, want > 0 ? BUY : SELL, c.qty * Math.abs(want - leg.side));
      leg.side = want;
    }
  }
}
