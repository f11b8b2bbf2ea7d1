-- SMS in bundles (docs/RATING.md "Bundles"): a bundle gives a quota of minutes, of
-- messages, or both, per calendar month. SQLite cannot change a CHECK, so bundles is
-- rebuilt (nothing refers to it); the columns keep PostgreSQL's order.
CREATE TABLE bundles_new (
    rates_id BIGINT PRIMARY KEY REFERENCES rates (id) ON DELETE CASCADE,
    minutes  INTEGER NOT NULL CHECK (minutes >= 0),
    fee      BIGINT NOT NULL DEFAULT 0 CHECK (fee >= 0),
    sms      INTEGER NOT NULL DEFAULT 0 CHECK (sms >= 0),
    CHECK (minutes > 0 OR sms > 0)
);
INSERT INTO bundles_new (rates_id, minutes, fee) SELECT rates_id, minutes, fee FROM bundles;
DROP TABLE bundles;
ALTER TABLE bundles_new RENAME TO bundles;

-- The month's messages: quota and used, next to the seconds.
ALTER TABLE bundle_usage ADD COLUMN sms_quota INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bundle_usage ADD COLUMN sms_used INTEGER NOT NULL DEFAULT 0;

-- One message of a month's quota claimed by sendSMS while its carrier answers: turned
-- into used once the carrier took the message, deleted if it refused. A hold left by a
-- daemon that stopped mid-request stops counting at expires_at.
CREATE TABLE sms_holds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT NOT NULL,
    rates_id   BIGINT NOT NULL,
    period     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sms_holds_user ON sms_holds (user_id, rates_id, period);
