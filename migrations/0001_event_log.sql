-- Tapedeck's PostgreSQL event store (seeds 000, 001, 003): the event log, per-stream sequence
-- state, idempotency keys, snapshots (replay anchors), command idempotency, fills and the
-- current-state projections. Forward-only: later changes are new numbered files.

-- One row per recorded event: the envelope of DESIGN.md. Partitioned by month of ingested_at;
-- `create_event_log_partitions` adds months, `check_partition_coverage` reports gaps.
CREATE TABLE event_log (
    event_id        text        NOT NULL,
    stream_key      text        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq >= 1),
    event_type      text        NOT NULL CHECK (event_type IN (
        'quote', 'trade', 'book_snapshot', 'book_delta', 'order_submitted', 'order_acked',
        'order_rejected', 'order_cancelled', 'fill', 'position', 'balance', 'risk_decision',
        'guardrail_transition', 'funding', 'custom')),
    instrument      text,
    occurred_at_ns  bigint      NOT NULL,
    ingested_at_ns  bigint      NOT NULL,
    -- The partition key: ingested_at_ns at microsecond precision.
    ingested_at     timestamptz NOT NULL,
    tenant_id       text,
    owner_id        text,
    workspace_id    text,
    project_id      text,
    trace_id        text,
    causation_id    text,
    command_id      text,
    workflow_id     text,
    -- The idempotency key when the writer gave one; NULL when it is derived (SHA-256 over
    -- tenant + stream + command + normalized payload, seed 003). Either way its hash is in
    -- `event_keys`, which makes keys globally unique: a unique constraint on a partitioned
    -- table must contain the partition key, which would make it unique per month only.
    idempotency_key text,
    payload         jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    -- The event as a packed guest codec record (layout `packed_layout` in tapedeck_meta):
    -- replay reads these with COPY instead of decoding JSONB.
    packed          bytea       NOT NULL,
    PRIMARY KEY (stream_key, seq, ingested_at)
) PARTITION BY RANGE (ingested_at);

CREATE INDEX event_log_type_time ON event_log (event_type, occurred_at_ns);
CREATE INDEX event_log_event_id ON event_log (event_id);
CREATE INDEX event_log_trace ON event_log (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX event_log_tenant ON event_log (tenant_id, stream_key) WHERE tenant_id IS NOT NULL;
-- Ad-hoc containment queries ("all buy fills": `payload @> '{"side": "buy"}'`).
CREATE INDEX event_log_payload ON event_log USING gin (payload jsonb_path_ops);

-- One row per event, unpartitioned: the global uniqueness of idempotency keys (seed 003: a
-- duplicate returns the existing event) and of (stream, seq), which event_log's primary key
-- can only give per month. key_hash is SHA-256 of the key text: 32 bytes whatever the key.
-- (stream_key, seq) is deferrable (checked per statement, not per row) so an append can
-- renumber its rows with one UPDATE whatever order it visits them in.
CREATE TABLE event_keys (
    key_hash   bytea  PRIMARY KEY,
    stream_key text   NOT NULL,
    seq        bigint NOT NULL,
    CONSTRAINT uk_event_keys_stream_seq UNIQUE (stream_key, seq) DEFERRABLE INITIALLY IMMEDIATE
);

-- Per stream: the last seq (optimistic concurrency compares against it under a row lock).
CREATE TABLE stream_state (
    stream_key  text        PRIMARY KEY,
    tenant_id   text,
    last_seq    bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Which months of event_log hold which seqs of a stream: reads of a seq range touch only the
-- partitions that hold it.
CREATE TABLE stream_months (
    stream_key text   NOT NULL,
    month      date   NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (stream_key, month)
);

-- Atomic sequence generation for single-event writers outside tapedeck (seed 003).
CREATE FUNCTION next_seq(p_stream_key text, p_tenant_id text) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO stream_state (stream_key, tenant_id, last_seq) VALUES (p_stream_key, p_tenant_id, 1)
    ON CONFLICT (stream_key) DO UPDATE SET last_seq = stream_state.last_seq + 1, updated_at = now()
    RETURNING last_seq
$$;

-- Events per stream and type, kept on append, so listing streams does not scan the log.
CREATE TABLE stream_counts (
    stream_key text   NOT NULL,
    event_type text   NOT NULL,
    events     bigint NOT NULL,
    first_time bigint NOT NULL,
    last_time  bigint NOT NULL,
    PRIMARY KEY (stream_key, event_type)
);

-- Stored projector states: replay anchors and what replays are diffed against.
CREATE TABLE snapshots (
    stream_key     text   NOT NULL,
    seq            bigint NOT NULL CHECK (seq >= 1),
    projector      text   NOT NULL,
    tenant_id      text,
    -- json, not jsonb: the document is kept as written (number spelling included).
    state          json   NOT NULL,
    guest_snapshot json,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_key, seq, projector)
) PARTITION BY HASH (stream_key);
CREATE TABLE snapshots_p0 PARTITION OF snapshots FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE snapshots_p1 PARTITION OF snapshots FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE snapshots_p2 PARTITION OF snapshots FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE snapshots_p3 PARTITION OF snapshots FOR VALUES WITH (MODULUS 4, REMAINDER 3);

-- Command idempotency: the events a command produced.
CREATE TABLE commands (
    command_id text        PRIMARY KEY,
    tenant_id  text,
    stream_key text        NOT NULL,
    first_seq  bigint      NOT NULL,
    last_seq   bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Exchange fills, deduplicated by the venue's trade id (seed 003). Venues number trades per
-- symbol (Binance's tradeId), so the key is (tenant, instrument, trade id), not the trade id alone.
CREATE TABLE fills (
    tenant_id         text    NOT NULL DEFAULT '',
    instrument        text    NOT NULL DEFAULT '',
    exchange_trade_id bigint  NOT NULL,
    stream_key        text    NOT NULL,
    seq               bigint  NOT NULL,
    event_id          text    NOT NULL,
    client_order_id   bigint  NOT NULL,
    side              text    NOT NULL,
    price             numeric NOT NULL,
    qty               numeric NOT NULL,
    fee               numeric NOT NULL,
    occurred_at_ns    bigint  NOT NULL,
    CONSTRAINT uk_fills_exchange_trade_id UNIQUE (tenant_id, instrument, exchange_trade_id)
);
CREATE INDEX fills_order ON fills (stream_key, client_order_id);

-- Current-state projections, updated in the append transaction.
CREATE TABLE orders_current (
    stream_key      text    NOT NULL,
    client_order_id bigint  NOT NULL,
    tenant_id       text,
    instrument      text,
    side            text,
    order_type      text,
    price           numeric,
    qty             numeric,
    filled_qty      numeric NOT NULL DEFAULT 0,
    venue_order_id  bigint,
    status          text    NOT NULL,
    reason          text,
    last_seq        bigint  NOT NULL,
    PRIMARY KEY (stream_key, client_order_id)
);

CREATE TABLE positions_current (
    stream_key   text    NOT NULL,
    instrument   text    NOT NULL,
    tenant_id    text,
    qty          numeric NOT NULL,
    avg_price    numeric NOT NULL,
    realized_pnl numeric NOT NULL,
    last_seq     bigint  NOT NULL,
    PRIMARY KEY (stream_key, instrument)
);

CREATE TABLE balances_current (
    stream_key text    NOT NULL,
    asset      text    NOT NULL,
    tenant_id  text,
    total      numeric NOT NULL,
    free       numeric NOT NULL,
    locked     numeric NOT NULL,
    last_seq   bigint  NOT NULL,
    PRIMARY KEY (stream_key, asset)
);

-- What could not become an event (an unparseable line of a capture, say): set aside with
-- where it came from and why, never dropped.
CREATE TABLE quarantine (
    id         bigserial   PRIMARY KEY,
    source     text        NOT NULL,
    record     jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Settings of this store that readers must agree on.
CREATE TABLE tapedeck_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- The partition of event_log for the month holding `day`; created if missing. Returns its
-- name. Serialised by an advisory lock so concurrent writers do not race on the DDL.
CREATE FUNCTION create_event_log_partition(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    m    date := date_trunc('month', day)::date;
    name text := format('event_log_%s', to_char(m, 'YYYY_MM'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tapedeck.event_log_partitions'));
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF event_log FOR VALUES FROM (%L) TO (%L)',
            name, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END IF;
    RETURN name;
END
$$;

-- Partitions for this month and the next `months_ahead` (seed 003's monthly job).
CREATE FUNCTION create_event_log_partitions(months_ahead int) RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT create_event_log_partition(
        (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date)
    FROM generate_series(0, months_ahead) AS i
$$;

-- For this month and the next `months_ahead`: is there a partition? Monitoring alerts on any
-- row with present = false.
CREATE FUNCTION check_partition_coverage(months_ahead int DEFAULT 3)
RETURNS TABLE (month date, partition_name text, present boolean)
LANGUAGE sql STABLE AS $$
    SELECT m::date,
           format('event_log_%s', to_char(m, 'YYYY_MM')),
           EXISTS (
               SELECT 1 FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'event_log'::regclass
                 AND c.relname = format('event_log_%s', to_char(m, 'YYYY_MM')))
    FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                         date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead),
                         interval '1 month') AS m
$$;
