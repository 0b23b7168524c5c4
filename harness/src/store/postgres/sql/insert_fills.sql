-- fills: one row per (tenant, instrument, exchange trade id); the first fill of a trade wins
-- (a trade id seen before, in this batch or an earlier one, is not stored again).
INSERT INTO fills (tenant_id, instrument, exchange_trade_id, stream_key, seq, event_id,
    client_order_id, side, price, qty, fee, occurred_at_ns)
SELECT DISTINCT ON (coalesce(tenant_id, ''), coalesce(instrument, ''),
        (payload->>'trade_id')::bigint)
    coalesce(tenant_id, ''), coalesce(instrument, ''), (payload->>'trade_id')::bigint,
    $1, seq, event_id, (payload->>'client_order_id')::bigint, payload->>'side',
    (payload->>'price')::numeric, (payload->>'qty')::numeric,
    coalesce((payload->>'fee')::numeric, 0), occurred_at_ns
FROM ev WHERE event_type = 'fill'
ORDER BY coalesce(tenant_id, ''), coalesce(instrument, ''),
    (payload->>'trade_id')::bigint, seq
ON CONFLICT (tenant_id, instrument, exchange_trade_id) DO NOTHING
