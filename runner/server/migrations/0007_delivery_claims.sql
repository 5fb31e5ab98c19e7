-- A verified delivery's claim on its id is its own row in `deliveries` (`claimed = 1`),
-- unique by this partial index, so the webhook answer waits on one autocommitted INSERT:
-- the claim and the record are the same row and commit together. `delivery_ids` keeps
-- the claims made before this migration; new claims are not written there.
ALTER TABLE deliveries ADD COLUMN claimed BIGINT;
CREATE UNIQUE INDEX delivery_claims ON deliveries (forge, delivery_id) WHERE claimed = 1;
