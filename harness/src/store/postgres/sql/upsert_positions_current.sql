-- positions_current: per instrument, the batch's last position event replaces the row.
INSERT INTO positions_current (stream_key, instrument, tenant_id, qty, avg_price,
    realized_pnl, last_seq)
SELECT DISTINCT ON (coalesce(instrument, '')) $1, coalesce(instrument, ''),
    tenant_id, (payload->>'qty')::numeric, (payload->>'avg_price')::numeric,
    coalesce((payload->>'realized_pnl')::numeric, 0), seq
FROM ev WHERE event_type = 'position'
ORDER BY coalesce(instrument, ''), seq DESC
ON CONFLICT (stream_key, instrument) DO UPDATE SET
    tenant_id = excluded.tenant_id, qty = excluded.qty,
    avg_price = excluded.avg_price, realized_pnl = excluded.realized_pnl,
    last_seq = excluded.last_seq
