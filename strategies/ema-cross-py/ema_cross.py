"""EMA-cross: per instrument, a fast and a slow exponential moving average of the mid price;
buy when the fast one crosses above the slow one, sell when it crosses below. The same
decisions as the Rust `strategies/ema-cross`, bit for bit."""

import tapedeck
from tapedeck import BUY, QUOTE, SELL


class EmaCross(tapedeck.Strategy):
    CONFIG = {"fast": 0.2, "slow": 0.05, "qty": 1.0, "warmup": 32}

    def __init__(self, cfg):
        if not (0.0 < cfg["slow"] < cfg["fast"] <= 1.0):
            raise ValueError(f"need 0 < slow < fast <= 1, got fast={cfg['fast']} slow={cfg['slow']}")
        self.cfg = cfg
        # instrument id -> [fast, slow, seen, side (+1 long, -1 short, 0 flat)]
        self.legs = {}

    def on_event(self, ev, ctx):
        if ev.kind != QUOTE:
            return
        q, c = ev.payload, self.cfg
        mid = ev.px(q.bid_px + q.ask_px) * 0.5
        leg = self.legs.get(ev.instrument)
        if leg is None:
            leg = self.legs[ev.instrument] = [mid, mid, 0, 0]
        leg[0] += c["fast"] * (mid - leg[0])
        leg[1] += c["slow"] * (mid - leg[1])
        leg[2] += 1
        want = 1 if leg[0] > leg[1] else -1
        if leg[2] > c["warmup"] and want != leg[3]:
            # Flip (or open): trade enough to go from the current side to the wanted one.
            ctx.market(ev, BUY if want > 0 else SELL, c["qty"] * abs(want - leg[3]))
            leg[3] = want


WitWorld = tapedeck.export_strategy(EmaCross)
