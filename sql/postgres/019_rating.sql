-- Rating beyond the reference (docs/RATING.md).
-- The initial block of a bill type (DECISIONS §5): 0 means "the step", so a bill type
-- made before it, or without it, keeps the reference's rule and follows its step.
ALTER TABLE bill_types ADD COLUMN first_step INTEGER NOT NULL DEFAULT 0 CHECK (first_step >= 0);

-- Resellers (DECISIONS §5): a call of a reseller's user reserves at every level of the
-- chain. level 0 is the caller's own reservation; level N the N-th reseller up the chain,
-- on that reseller's account. A call without uniqueid links its levels to its own row
-- through parent_id.
ALTER TABLE reservations ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN parent_id BIGINT;
DROP INDEX reservations_call;
CREATE UNIQUE INDEX reservations_call ON reservations (uniqueid, prior, level);
CREATE INDEX reservations_parent ON reservations (parent_id) WHERE parent_id IS NOT NULL;

-- What each reseller of a call's chain sold it for (the charge one level down) and bought
-- it for (its own charge): getStats' resale figures, the reseller's margin.
CREATE TABLE resale (
    call_id    BIGINT NOT NULL,
    level      INTEGER NOT NULL,
    account_id BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    sold       BIGINT NOT NULL,
    bought     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (call_id, level)
);
CREATE INDEX resale_user ON resale (user_id, created_at);
