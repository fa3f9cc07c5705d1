-- The outbox is delivered by its worker only, without a transaction open across the
-- MongoDB write: a row is leased (leased_until) by one short UPDATE, written to MongoDB,
-- then deleted. A failed row waits (next_attempt_at, growing with attempts); a row that can
-- never be delivered is parked (parked_at) after a few tries instead of blocking the rows
-- behind it. Delivered rows are no longer kept.
DELETE FROM mongo_outbox WHERE delivered_at IS NOT NULL;
ALTER TABLE mongo_outbox
    DROP COLUMN delivered_at,
    ADD COLUMN next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN leased_until    TIMESTAMPTZ,
    ADD COLUMN parked_at       TIMESTAMPTZ;
CREATE INDEX mongo_outbox_due_idx ON mongo_outbox (next_attempt_at, id) WHERE parked_at IS NULL;
