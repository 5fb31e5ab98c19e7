-- An accepted delivery keeps what processing it needs until it is processed: `payload`,
-- the verified payload as JSON text (a form-encoded GitHub delivery's `payload` field),
-- written by the same INSERT that claims and records the delivery, so the webhook's
-- answer still waits on one statement. Forge, event, delivery id and repository are
-- columns already. Processing sets the outcome (`queued`, `skipped`, `no_match`,
-- `failed`), `processed_at`, and `payload = NULL` in the transaction that queues the runs,
-- so a payload is only ever kept for a delivery not processed yet. A server that starts
-- processes the rows still `accepted` (oldest first) before it serves.
ALTER TABLE deliveries ADD COLUMN payload TEXT;
ALTER TABLE deliveries ADD COLUMN processed_at TEXT;
CREATE INDEX deliveries_unprocessed ON deliveries (received_at, id) WHERE result = 'accepted';
-- Rows left `accepted` by a server before this migration have no payload and cannot be
-- processed: they are marked `interrupted` and their claim on the delivery id is released,
-- so a redelivery from the forge's log is processed (unless the delivery had queued runs,
-- and only its outcome was not recorded).
UPDATE deliveries SET
    result = 'interrupted',
    reason = 'the server stopped before processing this delivery and kept no payload (before migration 9); a redelivery is processed',
    claimed = NULL
WHERE result = 'accepted'
  AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.repo = deliveries.repo
                  AND runs.delivery_id = deliveries.delivery_id);
DELETE FROM delivery_ids WHERE EXISTS (
    SELECT 1 FROM deliveries d WHERE d.result = 'interrupted'
      AND d.forge = delivery_ids.forge AND d.delivery_id = delivery_ids.delivery_id);
UPDATE deliveries SET result = 'queued',
    reason = 'runs were queued; the server stopped before recording this outcome (before migration 9)'
WHERE result = 'accepted';
