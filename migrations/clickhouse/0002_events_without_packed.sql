-- `events` stops carrying each event's packed guest record: `event_runs` holds the same
-- records, and replay reads them there only. The column was ~65 of the ~270 bytes an `events`
-- row costs the server on every append (parsed, sorted, compressed, merged).
-- One statement: 18.16 has no `DROP COLUMN IF EXISTS`.
ALTER TABLE events DROP COLUMN packed;
