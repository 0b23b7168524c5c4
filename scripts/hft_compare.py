#!/usr/bin/env python3
"""Runs hftbacktest (PyPI, 2.4.x) on market data and orders written by Tapedeck's venue
comparison test (tests/all/venue_hft.rs) and prints the fills it makes, as JSON.

Input (argv[1], JSON):
  events:  [[kind, time_ns, side, price, qty], ...] in order; kind "d" depth level, "s"
           snapshot level, "c" clear the book, "t" trade; side "b"/"a" for levels, "buy"/"sell"
           for the aggressor of a trade; price and qty as decimal strings.
  orders:  [[id, time_ns, side, type, tif, price, qty], ...] sorted by time; type "limit" or
           "market", tif "gtc"/"ioc"/"fok"/"gtx".
  latency_ns, tick_size, lot_size.
Exchange time = local time = time_ns (no feed latency); constant order latency both ways;
PartialFillExchange; RiskAverseQueueModel; no fees.

Output (stdout, JSON): {"fills": [...], "position": p, "balance": b}, a fill record per order
per response step that filled something, [id, exch_ts, filled_qty, last_exec_price, maker]
(the local side sees an order's last state: a walk over several levels shows as its total
quantity and its last price), and the final position and balance (minus the notional of all
fills, no fees).
"""
import json
import sys

import numpy as np
from hftbacktest import (BacktestAsset, HashMapMarketDepthBacktest, BUY_EVENT, SELL_EVENT,
                         DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_CLEAR_EVENT, TRADE_EVENT,
                         EXCH_EVENT, LOCAL_EVENT, GTC, GTX, LIMIT, MARKET)
from hftbacktest.binding import event_dtype

FOK, IOC = 2, 3
TIF = {"gtc": GTC, "gtx": GTX, "fok": FOK, "ioc": IOC}


def main():
    spec = json.load(open(sys.argv[1]))
    rows = []
    for kind, t, side, px, qty in spec["events"]:
        ev = EXCH_EVENT | LOCAL_EVENT
        if kind == "d":
            ev |= DEPTH_EVENT | (BUY_EVENT if side == "b" else SELL_EVENT)
        elif kind == "s":
            ev |= DEPTH_SNAPSHOT_EVENT | (BUY_EVENT if side == "b" else SELL_EVENT)
        elif kind == "c":
            ev |= DEPTH_CLEAR_EVENT
        elif kind == "t":
            ev |= TRADE_EVENT | (BUY_EVENT if side == "buy" else SELL_EVENT)
        rows.append((ev, t, t, float(px), float(qty), 0, 0, 0.0))
    data = np.array(rows, dtype=event_dtype)
    lat = spec["latency_ns"]
    asset = (
        BacktestAsset()
        .data([data])
        .linear_asset(1.0)
        .constant_order_latency(lat, lat)
        .risk_adverse_queue_model()
        .partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(spec["tick_size"])
        .lot_size(spec["lot_size"])
    )
    hbt = HashMapMarketDepthBacktest([asset])
    orders = spec["orders"]
    seen = {}  # id -> filled so far
    out = []
    def collect():
        changed = []
        values = hbt.orders(0).values()
        while values.has_next():
            o = values.get()
            filled = o.qty - o.leaves_qty
            if filled > seen.get(o.order_id, 0.0) + 1e-12:
                changed.append([o.order_id, o.exch_timestamp, filled - seen.get(o.order_id, 0.0),
                                o.exec_price, bool(o.arr[0]['maker'])])
                seen[o.order_id] = filled
        for c in changed:
            out.append(c)

    i = 0
    end = spec["events"][-1][1] + 10 * lat + 1
    # The first feed starts the clock.
    hbt.wait_next_feed(True, 1)
    while True:
        target = orders[i][1] if i < len(orders) else end
        now = hbt.current_timestamp
        if target > now:
            r = hbt.wait_next_feed(True, target - now)
            collect()
            if r == 1:
                break
            if r not in (0, 2, 3):
                raise SystemExit(f"hftbacktest error {r}")
            if hbt.current_timestamp < target:
                continue
        if i >= len(orders):
            break
        while i < len(orders) and orders[i][1] <= hbt.current_timestamp:
            oid, t, side, typ, tif, px, qty = orders[i]
            submit = hbt.submit_buy_order if side == "buy" else hbt.submit_sell_order
            r = submit(0, oid, float(px), float(qty), TIF[tif],
                       MARKET if typ == "market" else LIMIT, False)
            if r != 0:
                raise SystemExit(f"submit {oid} failed: {r}")
            i += 1
    collect()
    sv = hbt.state_values(0)
    result = {"fills": out, "position": sv.position, "balance": sv.balance}
    hbt.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
