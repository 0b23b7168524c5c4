-- Tapedeck's ClickHouse store (seed 004, ClickHouse 18.16 and later): the event log with the
-- packed guest records, the packed replay runs, the commit log that makes appends exactly-once,
-- snapshots, quarantine, and the seed's typed tables filled from the same appends.
-- Forward-only: later changes are new numbered files. Statements end with `;` at the end of a
-- line (the migrator sends them one by one: the HTTP interface takes one statement a request).
--
-- Times are ns since the epoch in Int64 (18.16 has no DateTime64); partitions are UTC days of
-- event time, `toDate(intDiv(ns, 1e9))`. No TTL (18.16 predates it): `tapedeck retention apply`
-- drops expired day partitions per table.
-- Every data table carries (stream_key, seq): a failed append's rows are found and deleted by
-- them before the stream is written again, and analysts join back to `events` by them.

-- The applied migrations (what `tapedeck migrate` ran).
CREATE TABLE IF NOT EXISTS tapedeck_migrations (
    version    UInt32,
    name       String,
    applied_at DateTime DEFAULT now()
) ENGINE = MergeTree ORDER BY version;

-- Store-wide facts (the codec layout of the `packed` columns). Latest row per key wins.
CREATE TABLE IF NOT EXISTS tapedeck_meta (
    key   String,
    value String
) ENGINE = ReplacingMergeTree ORDER BY key;

-- One row per event: the full envelope (the JSON envelope's fields), the payload as JSON text
-- and the event as a packed guest codec record (as PostgreSQL's `packed`). `append_id` names
-- the append that wrote it (see `batches`).
CREATE TABLE IF NOT EXISTS events (
    stream_key      String,
    seq             UInt64,
    event_id        String,
    event_type      String,
    instrument      Nullable(String),
    occurred_at_ns  Int64,
    ingested_at_ns  Int64,
    tenant_id       Nullable(String),
    owner_id        Nullable(String),
    workspace_id    Nullable(String),
    project_id      Nullable(String),
    trace_id        Nullable(String),
    causation_id    Nullable(String),
    command_id      Nullable(String),
    workflow_id     Nullable(String),
    idempotency_key Nullable(String),
    payload         String,
    packed          String,
    append_id       String
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(occurred_at_ns, 1000000000))
ORDER BY (stream_key, seq);

-- The replay path: runs of consecutive events of one stream (at most a few thousand, never
-- across a day), their packed records concatenated as (time Int64 LE, length UInt32 LE,
-- record). One row streams thousands of events: replay reads these, not `events`. Each row
-- also sums itself up (last time, events per type), so listing streams reads a row per run,
-- not a row per event. A row is hundreds of KB: one index mark per row, so a read of one
-- stream skips the other streams' runs instead of reading whole 8192-row granules.
CREATE TABLE IF NOT EXISTS event_runs (
    stream_key  String,
    first_seq   UInt64,
    last_seq    UInt64,
    first_time  Int64,
    records     String,
    append_id   String,
    last_time   Int64,
    types       Array(String),
    type_counts Array(UInt64)
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(first_time, 1000000000))
ORDER BY (stream_key, first_seq)
SETTINGS index_granularity = 1;

-- The commit log: one row per append, written after all its rows. A stream holds exactly the
-- seqs up to its greatest committed `last_seq`; rows past it belong to an append that failed
-- and are deleted before the stream is written again.
CREATE TABLE IF NOT EXISTS batches (
    stream_key String,
    first_seq  UInt64,
    last_seq   UInt64,
    append_id  String,
    events     UInt64,
    committed_at DateTime DEFAULT now()
) ENGINE = MergeTree ORDER BY (stream_key, first_seq);

-- Stored projector states (replay anchors). A later put of the same key replaces it (read
-- with FINAL).
CREATE TABLE IF NOT EXISTS snapshots (
    stream_key     String,
    seq            UInt64,
    projector      String,
    state          String,
    guest_snapshot Nullable(String)
) ENGINE = ReplacingMergeTree ORDER BY (stream_key, seq, projector);

-- What could not become an event (an unparseable capture line), kept rather than dropped.
-- `received_ns` orders a source's records oldest first (the writer's clock, strictly increasing
-- within one process; DateTime's seconds would tie).
CREATE TABLE IF NOT EXISTS quarantine (
    source      String,
    record      String,
    received_at DateTime DEFAULT now(),
    received_ns Int64
) ENGINE = MergeTree ORDER BY (source, received_ns);

-- Seed 004's typed tables, filled from the same appends as `events` (so they follow its
-- exactly-once). Prices and quantities are Decimal128(18): exact for every decimal the
-- envelope carries. Seed fields no event of ours carries are left out rather than faked.

-- Quotes, trades and book snapshots/deltas (the top 5 levels as arrays). ts_exchange is the
-- event time, ts_local the recording time, source the stream.
CREATE TABLE IF NOT EXISTS market_data (
    ts_exchange Int64,
    ts_local    Int64,
    symbol      String,
    kind        String,
    bid_px1     Nullable(Decimal128(18)),
    bid_sz1     Nullable(Decimal128(18)),
    ask_px1     Nullable(Decimal128(18)),
    ask_sz1     Nullable(Decimal128(18)),
    bid_px      Array(Decimal128(18)),
    bid_sz      Array(Decimal128(18)),
    ask_px      Array(Decimal128(18)),
    ask_sz      Array(Decimal128(18)),
    last_price  Nullable(Decimal128(18)),
    last_qty    Nullable(Decimal128(18)),
    source      String,
    stream_key  String,
    seq         UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts_exchange, 1000000000))
ORDER BY (symbol, ts_exchange);

-- The order lifecycle, one row per event: status submitted / acked / rejected / cancelled.
CREATE TABLE IF NOT EXISTS orders (
    ts              Int64,
    ts_local        Int64,
    client_order_id UInt64,
    broker_order_id Nullable(UInt64),
    symbol          String,
    side            Nullable(String),
    qty             Nullable(Decimal128(18)),
    limit_px        Nullable(Decimal128(18)),
    order_type      Nullable(String),
    tif             Nullable(String),
    status          String,
    reject_reason   Nullable(String),
    stream_key      String,
    seq             UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts, 1000000000))
ORDER BY (client_order_id, ts);

CREATE TABLE IF NOT EXISTS fills (
    ts_exchange     Int64,
    ts_local        Int64,
    client_order_id UInt64,
    fill_id         UInt64,
    symbol          String,
    side            String,
    liquidity       Nullable(String),
    is_final        UInt8,
    fill_qty        Decimal128(18),
    fill_price      Decimal128(18),
    fees            Decimal128(18),
    source          String,
    stream_key      String,
    seq             UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts_exchange, 1000000000))
ORDER BY (client_order_id, ts_exchange);

-- Position snapshots (`position` events); account_id is the tenant.
CREATE TABLE IF NOT EXISTS positions_intraday (
    ts           Int64,
    account_id   String,
    symbol       String,
    position_qty Decimal128(18),
    avg_price    Decimal128(18),
    realized_pnl Decimal128(18),
    stream_key   String,
    seq          UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts, 1000000000))
ORDER BY (symbol, ts);

-- Balance snapshots (`balance` events), per asset: equity is the total, cash the free part,
-- margin_used the locked part.
CREATE TABLE IF NOT EXISTS account_state (
    ts          Int64,
    account_id  String,
    asset       String,
    equity      Decimal128(18),
    cash        Decimal128(18),
    margin_used Decimal128(18),
    stream_key  String,
    seq         UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts, 1000000000))
ORDER BY (account_id, asset, ts);

CREATE TABLE IF NOT EXISTS risk_decisions (
    ts              Int64,
    symbol          String,
    client_order_id UInt64,
    decision        String,
    reason_code     String,
    stream_key      String,
    seq             UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts, 1000000000))
ORDER BY (client_order_id, ts);

CREATE TABLE IF NOT EXISTS guardrail_transitions (
    ts             Int64,
    prev_mode      String,
    next_mode      String,
    trigger_metric String,
    value          Decimal128(18),
    reason         String,
    stream_key     String,
    seq            UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts, 1000000000))
ORDER BY ts;

-- Everything else (funding, custom events): the type and the payload JSON.
CREATE TABLE IF NOT EXISTS system_events (
    ts         Int64,
    event_type String,
    symbol     String,
    payload    String,
    stream_key String,
    seq        UInt64
) ENGINE = MergeTree
PARTITION BY toDate(intDiv(ts, 1000000000))
ORDER BY (event_type, ts);
