-- Bundles (docs/RATING.md "Bundles"): a tariff option may include a quota of minutes per
-- calendar month for a monthly fee. Deleting the option deletes its bundle; the months
-- already paid stay in bundle_usage (history, and usable to the month's end).
CREATE TABLE bundles (
    rates_id BIGINT PRIMARY KEY REFERENCES rates (id) ON DELETE CASCADE,
    minutes  INTEGER NOT NULL CHECK (minutes > 0),
    fee      BIGINT NOT NULL DEFAULT 0 CHECK (fee >= 0)
);

-- One row per user, bundle and month, written with the month's fee (so a row is a paid
-- month): quota and used are in seconds.
CREATE TABLE bundle_usage (
    user_id    BIGINT NOT NULL,
    rates_id   BIGINT NOT NULL,
    period     TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    quota      INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    fee        BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, rates_id, period)
);

-- The seconds of a bundle an open call holds (reserved like money, released with it).
ALTER TABLE reservations ADD COLUMN quota INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN bundle BIGINT NOT NULL DEFAULT 0;
CREATE INDEX reservations_bundle ON reservations (user_id, bundle) WHERE bundle <> 0;
