-- Items follow their batch (as in the SQLite store's schema version 2, relayer/_store_schema.py): a batch's items
-- are written once, as 'batched', and every later step of the batch changes the batch row only; item_view reports
-- each item's state (a 'batched' item is batched, submitted, confirmed or failed as its batch is). A stored
-- 'submitted' item is a 'batched' one of a submitted batch. Only waiting items stay indexed by lane: a row leaving
-- 'received' is then not re-indexed.
UPDATE items SET state = 'batched' WHERE state = 'submitted';
DROP INDEX items_by_state;
CREATE INDEX items_received ON items (lane, id) WHERE state = 'received';
CREATE VIEW item_view AS
SELECT i.id, i.kind, i.lane, i.key, i.payload,
    CASE WHEN i.state <> 'batched' THEN i.state WHEN b.state = 'built' THEN 'batched' ELSE b.state END AS state,
    CASE WHEN i.state = 'batched' AND b.state IN ('confirmed', 'failed') THEN b.reason ELSE i.reason END AS reason,
    i.batch_id, i.source, i.received_at,
    CASE WHEN i.state = 'batched' THEN b.updated_at ELSE i.updated_at END AS updated_at
FROM items AS i LEFT JOIN batches AS b ON b.id = i.batch_id;
