-- A reservation lives from callPrepare to callFinish. Its foreign keys to accounts and
-- users cost every callPrepare two checks (on PostgreSQL a fifth of the server's CPU per
-- callPrepare, bench/NOTES.md); deleteUser and deleteAccount delete the reservations
-- themselves instead. SQLite drops a constraint by rebuilding the table.
CREATE TABLE reservations_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    BIGINT NOT NULL,
    user_id       BIGINT NOT NULL,
    extension     TEXT NOT NULL DEFAULT '',
    uniqueid      TEXT,
    destination   TEXT NOT NULL,
    prior         INTEGER NOT NULL,
    amount        BIGINT NOT NULL,
    max_call_time INTEGER NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    channel       TEXT NOT NULL DEFAULT '',
    sip_server    TEXT NOT NULL DEFAULT '',
    win           INTEGER NOT NULL DEFAULT 0,
    win_start     BIGINT NOT NULL DEFAULT 0,
    covered       INTEGER NOT NULL DEFAULT 0,
    win_price     BLOB,
    watcher       TEXT NOT NULL DEFAULT '',
    level         INTEGER NOT NULL DEFAULT 0,
    parent_id     BIGINT,
    quota         INTEGER NOT NULL DEFAULT 0,
    bundle        BIGINT NOT NULL DEFAULT 0
);
INSERT INTO reservations_new SELECT id, account_id, user_id, extension, uniqueid, destination, prior, amount,
    max_call_time, created_at, expires_at, channel, sip_server, win, win_start, covered, win_price, watcher,
    level, parent_id, quota, bundle FROM reservations;
-- Reservation ids go on from where they were, not from the highest left.
INSERT INTO sqlite_sequence (name, seq) SELECT 'reservations_new', 0 WHERE NOT EXISTS
    (SELECT 1 FROM sqlite_sequence WHERE name = 'reservations_new');
UPDATE sqlite_sequence SET seq = max(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'reservations'), 0))
    WHERE name = 'reservations_new';
DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;
CREATE INDEX reservations_held ON reservations (account_id, expires_at, amount, uniqueid, prior);
CREATE INDEX reservations_windows ON reservations (watcher, win_start) WHERE win > 0;
CREATE UNIQUE INDEX reservations_call ON reservations (uniqueid, prior, level);
CREATE INDEX reservations_parent ON reservations (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX reservations_bundle ON reservations (user_id, bundle) WHERE bundle <> 0;
