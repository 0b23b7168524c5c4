-- The prefix of every projection update: the batch's projection-relevant events as a relation
-- `ev` (binds $2..$8, the columns of `Projected`), so the updates read the rows in hand rather
-- than the log. $1 is the stream key.
WITH ev AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[]::jsonb[], $8::bigint[])
    AS u(seq, event_type, instrument, tenant_id, event_id, payload, occurred_at_ns))
