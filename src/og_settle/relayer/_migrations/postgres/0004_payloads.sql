-- A record's payload moves out of its item row into payloads, written once with the item in the same transaction
-- and never changed, so the item rows that change (batched, failed, ...) stay small (as the SQLite store's schema
-- version 3, relayer/_store_schema.py). item_view reads it from there.
CREATE TABLE payloads (
    item_id BIGINT PRIMARY KEY,
    payload TEXT NOT NULL
);
INSERT INTO payloads (item_id, payload) SELECT id, payload FROM items;
DROP VIEW item_view;
ALTER TABLE items DROP COLUMN payload;
CREATE VIEW item_view AS
SELECT i.id, i.kind, i.lane, i.key, p.payload,
    CASE WHEN i.state <> 'batched' THEN i.state WHEN b.state = 'built' THEN 'batched' ELSE b.state END AS state,
    CASE WHEN i.state = 'batched' AND b.state IN ('confirmed', 'failed') THEN b.reason ELSE i.reason END AS reason,
    i.batch_id, i.source, i.received_at,
    CASE WHEN i.state = 'batched' THEN b.updated_at ELSE i.updated_at END AS updated_at
FROM items AS i LEFT JOIN batches AS b ON b.id = i.batch_id LEFT JOIN payloads AS p ON p.item_id = i.id;
