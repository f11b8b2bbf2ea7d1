-- The daemon's own schedule (DECISIONS §8). One row: the lease that lets one runner at a
-- time do the periodic work (holder, lease_until), and what the last run did.
CREATE TABLE maintenance (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    started_at  BIGINT NOT NULL DEFAULT 0,
    finished_at BIGINT NOT NULL DEFAULT 0,
    ran_by      TEXT NOT NULL DEFAULT '',
    report      TEXT NOT NULL DEFAULT ''
);
INSERT INTO maintenance (name) VALUES ('schedule');

-- Mail is written here first, in the transaction of what caused it, and sent from here.
-- dedup names the event (one message per event, however often it is noticed).
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup         TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    user_id       BIGINT,
    recipient     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    body          TEXT NOT NULL,
    attach_name   TEXT NOT NULL DEFAULT '',
    attachment    BLOB,
    status        INTEGER NOT NULL DEFAULT 0, -- 0 queued, 1 sent, 2 failed (given up)
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    sent_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (status, next_at);

-- A postpaid account's monthly invoice names its month: never two for one month.
ALTER TABLE invoices ADD COLUMN period TEXT NOT NULL DEFAULT '';
ALTER TABLE invoices ADD COLUMN due_at BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX invoices_period ON invoices (account_id, period) WHERE period <> '';

-- The low-balance notice was sent for the current crossing (re-armed at or above the limit).
ALTER TABLE users ADD COLUMN balance_notified INTEGER NOT NULL DEFAULT 0;

-- Ledger rows are never changed either (DECISIONS §4).
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are never changed'); END;
