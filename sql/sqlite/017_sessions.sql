-- Browser sessions (login, refreshToken, logout): the sha256 of each token, never the
-- token itself. A session belongs to the client key it was opened through; stamp is a
-- digest of the user's password hash and status when it opened, so a password change or
-- a lock ends it.
CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BIGINT NOT NULL,
    key_id          BIGINT NOT NULL,
    access_hash     TEXT NOT NULL UNIQUE,
    refresh_hash    TEXT NOT NULL UNIQUE,
    access_expires  BIGINT NOT NULL,
    refresh_expires BIGINT NOT NULL,
    stamp           TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
