-- orders_current: per client order id, the status of its last event, the terms of its last
-- submission, its venue id and rejection reason, and the quantity filled (summed over the
-- fills table, which the fills statement has updated first).
, orders AS (
    SELECT seq, event_type, instrument, tenant_id, payload,
        (payload->>'client_order_id')::bigint AS coid
    FROM ev WHERE event_type IN ('order_submitted', 'order_acked', 'order_rejected',
                                 'order_cancelled', 'fill')),
last AS (
    SELECT DISTINCT ON (coid) coid, seq, tenant_id, instrument,
        CASE event_type
            WHEN 'order_submitted' THEN 'submitted'
            WHEN 'order_acked' THEN 'acked'
            WHEN 'order_rejected' THEN 'rejected'
            WHEN 'order_cancelled' THEN 'cancelled'
            ELSE CASE WHEN (payload->>'is_final')::boolean THEN 'filled'
                      ELSE 'partially_filled' END
        END AS status
    FROM orders ORDER BY coid, seq DESC),
sub AS (
    SELECT DISTINCT ON (coid) coid, payload FROM orders
    WHERE event_type = 'order_submitted' ORDER BY coid, seq DESC),
agg AS (
    SELECT coid,
        max((payload->>'venue_order_id')::bigint)
            FILTER (WHERE event_type = 'order_acked') AS venue,
        max(payload->>'reason') FILTER (WHERE event_type = 'order_rejected') AS reason
    FROM orders GROUP BY coid)
INSERT INTO orders_current AS o (stream_key, client_order_id, tenant_id, instrument,
    side, order_type, price, qty, filled_qty, venue_order_id, status, reason, last_seq)
SELECT $1, l.coid, l.tenant_id, l.instrument, s.payload->>'side',
    s.payload->>'order_type', (s.payload->>'price')::numeric,
    (s.payload->>'qty')::numeric,
    coalesce((SELECT sum(f.qty) FROM fills f
              WHERE f.stream_key = $1 AND f.client_order_id = l.coid), 0),
    a.venue, l.status, a.reason, l.seq
FROM last l JOIN agg a USING (coid) LEFT JOIN sub s USING (coid)
ON CONFLICT (stream_key, client_order_id) DO UPDATE SET
    tenant_id = coalesce(excluded.tenant_id, o.tenant_id),
    instrument = coalesce(excluded.instrument, o.instrument),
    side = coalesce(excluded.side, o.side),
    order_type = coalesce(excluded.order_type, o.order_type),
    price = coalesce(excluded.price, o.price),
    qty = coalesce(excluded.qty, o.qty),
    filled_qty = excluded.filled_qty,
    venue_order_id = coalesce(excluded.venue_order_id, o.venue_order_id),
    status = excluded.status,
    reason = coalesce(excluded.reason, o.reason),
    last_seq = excluded.last_seq
