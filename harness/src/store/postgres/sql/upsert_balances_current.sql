-- balances_current: per asset (the event's instrument), the batch's last balance event
-- replaces the row.
INSERT INTO balances_current (stream_key, asset, tenant_id, total, free, locked,
    last_seq)
SELECT DISTINCT ON (coalesce(instrument, '')) $1, coalesce(instrument, ''),
    tenant_id, (payload->>'total')::numeric, (payload->>'free')::numeric,
    coalesce((payload->>'locked')::numeric, 0), seq
FROM ev WHERE event_type = 'balance'
ORDER BY coalesce(instrument, ''), seq DESC
ON CONFLICT (stream_key, asset) DO UPDATE SET
    tenant_id = excluded.tenant_id, total = excluded.total, free = excluded.free,
    locked = excluded.locked, last_seq = excluded.last_seq
