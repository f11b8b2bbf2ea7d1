-- narayanad schema 1: the whole Narayana Billing API 2.2 data model.
-- Money columns are BIGINT micro-units (1e-6) of the system currency; rates and
-- multipliers use the same 1e6 scale. Times are BIGINT Unix seconds (UTC).

CREATE TABLE currencies (
    code            TEXT PRIMARY KEY,
    displayname     TEXT NOT NULL,
    eur_course      BIGINT NOT NULL CHECK (eur_course > 0), -- units per 1 EUR, ×1e6
    transfer_fee    BIGINT NOT NULL DEFAULT 0,
    referral_reward BIGINT NOT NULL DEFAULT 0
);
INSERT INTO currencies (code, displayname, eur_course) VALUES
    ('EUR', '€', 1000000), ('USD', '$', 1080000), ('RUB', 'rub.', 98000000);

CREATE TABLE bill_types (
    name           TEXT PRIMARY KEY,
    free_threshold INTEGER NOT NULL DEFAULT 0 CHECK (free_threshold >= 0),
    step           INTEGER NOT NULL CHECK (step > 0)
);
INSERT INTO bill_types (name, free_threshold, step) VALUES ('by_second', 0, 1), ('byminute', 0, 60);

CREATE TABLE sip_servers (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL UNIQUE,  -- the realm
    address           TEXT NOT NULL UNIQUE,
    dns               TEXT NOT NULL DEFAULT '',
    ami_address       TEXT NOT NULL DEFAULT '',
    ami_user          TEXT NOT NULL DEFAULT '',
    ami_secret        TEXT NOT NULL DEFAULT '',
    dialplan_version  TEXT NOT NULL DEFAULT '',
    interface_version TEXT NOT NULL DEFAULT ''
);

CREATE TABLE accounts (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT, -- the account number
    balance              BIGINT NOT NULL DEFAULT 0,
    overdraft            BIGINT NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
    refill_allowed       INTEGER NOT NULL DEFAULT 2,
    postpaid             INTEGER NOT NULL DEFAULT 0,
    billing_name         TEXT NOT NULL DEFAULT '',
    billing_address      TEXT NOT NULL DEFAULT '',
    billing_email        TEXT NOT NULL DEFAULT '',
    billing_bank_account TEXT NOT NULL DEFAULT '',
    owner_id             BIGINT,
    created_at           BIGINT NOT NULL DEFAULT 0
);
-- Account numbers start at 100000001.
INSERT INTO sqlite_sequence (name, seq) VALUES ('accounts', 100000000);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    username             TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    manager_id           BIGINT REFERENCES users (id) ON DELETE SET NULL,
    accesslevel          INTEGER NOT NULL DEFAULT 11,
    active               INTEGER NOT NULL DEFAULT 1,
    account_id           BIGINT NOT NULL REFERENCES accounts (id),
    currency             TEXT NOT NULL REFERENCES currencies (code),
    language             TEXT NOT NULL DEFAULT 'english',
    timezone             REAL NOT NULL DEFAULT 0,
    rates_id             BIGINT,
    allowed_rates        TEXT NOT NULL DEFAULT '',
    allowed_call_len     INTEGER NOT NULL DEFAULT 0,
    notify_email         TEXT NOT NULL DEFAULT '',
    notify_balance       INTEGER NOT NULL DEFAULT 0,
    notify_balance_limit BIGINT NOT NULL DEFAULT 0,
    notify_did           INTEGER NOT NULL DEFAULT -1,
    notify_ticket        INTEGER NOT NULL DEFAULT 0,
    invites              INTEGER NOT NULL DEFAULT 0,
    comment              TEXT NOT NULL DEFAULT '',
    created_at           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_manager ON users (manager_id);
CREATE INDEX users_account ON users (account_id);

CREATE TABLE extensions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    extension        TEXT NOT NULL UNIQUE,
    user_id          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_id        BIGINT REFERENCES sip_servers (id),
    password         TEXT NOT NULL DEFAULT '',
    callerid         TEXT NOT NULL DEFAULT '',
    language         TEXT NOT NULL DEFAULT 'en',
    rates_id         BIGINT,
    rates_options    TEXT NOT NULL DEFAULT '',
    srtp             INTEGER NOT NULL DEFAULT 0,
    transport        TEXT NOT NULL DEFAULT 'udp',
    max_call_len     INTEGER NOT NULL DEFAULT 0,
    reach            INTEGER NOT NULL DEFAULT 2,
    redirect         TEXT NOT NULL DEFAULT '',
    force_callback   INTEGER NOT NULL DEFAULT 0,
    pitch_shift      INTEGER NOT NULL DEFAULT -1,
    host             TEXT NOT NULL DEFAULT '',
    options          TEXT NOT NULL DEFAULT '',
    disa_pin         TEXT NOT NULL DEFAULT '',
    disa_trusted_cli TEXT NOT NULL DEFAULT '',
    updated_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX extensions_user ON extensions (user_id);
CREATE INDEX extensions_callerid ON extensions (callerid);

-- Every balance change is a row here; accounts.balance always equals the sum of amount.
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    amount     BIGINT NOT NULL,
    balance    BIGINT NOT NULL, -- the account's balance after this row
    kind       TEXT NOT NULL,   -- initial, transfer, call, manual, did, prepaid, invoice
    ref        TEXT NOT NULL DEFAULT '',
    comment    TEXT NOT NULL DEFAULT '',
    user_id    BIGINT,          -- who caused it
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_account ON ledger (account_id, id);

CREATE TABLE api_keys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    apikey          TEXT NOT NULL UNIQUE,
    auth_by         TEXT NOT NULL DEFAULT 'username',
    source          TEXT NOT NULL DEFAULT '*',
    access_level    INTEGER NOT NULL DEFAULT 0,
    default_user    TEXT NOT NULL DEFAULT '',
    allowed_methods TEXT NOT NULL DEFAULT '',
    secure_only     INTEGER NOT NULL DEFAULT 0,
    enabled         INTEGER NOT NULL DEFAULT 1,
    revoked         INTEGER NOT NULL DEFAULT 0,
    owner_id        BIGINT REFERENCES users (id) ON DELETE SET NULL,
    dnsname         TEXT NOT NULL DEFAULT '',
    maintenance     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL DEFAULT 0
);

-- Bans of source addresses; rows with source 'whitelist' are exemptions, not bans.
CREATE TABLE bans (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT NOT NULL, -- the host that banned (a SIP server, 'narayanad') or 'whitelist'
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    permanent  INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX bans_target ON bans (target);

CREATE TABLE routes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    type             TEXT NOT NULL DEFAULT 'sip',
    server_id        BIGINT REFERENCES sip_servers (id),
    prefix           TEXT NOT NULL DEFAULT '',
    host             TEXT NOT NULL DEFAULT '',
    username         TEXT NOT NULL DEFAULT '',
    fromuser         INTEGER NOT NULL DEFAULT 0,
    pass             TEXT NOT NULL DEFAULT '',
    cli              INTEGER NOT NULL DEFAULT 2,
    enabled          INTEGER NOT NULL DEFAULT 1,
    owner_id         BIGINT REFERENCES users (id) ON DELETE SET NULL,
    balance_handler  TEXT NOT NULL DEFAULT '',
    balance_username TEXT NOT NULL DEFAULT '',
    balance_password TEXT NOT NULL DEFAULT '',
    balance          BIGINT NOT NULL DEFAULT 0,
    lastupdate       BIGINT NOT NULL DEFAULT 0,
    clientlastupdate BIGINT NOT NULL DEFAULT 0
);

-- Several codes may share one direction id.
CREATE TABLE directions (
    code    TEXT PRIMARY KEY,
    id      BIGINT NOT NULL,
    name    TEXT NOT NULL,
    min_len INTEGER NOT NULL DEFAULT 0,
    max_len INTEGER NOT NULL DEFAULT 32
);
CREATE INDEX directions_id ON directions (id);

CREATE TABLE rates (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name     TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL,
    bill_type      TEXT NOT NULL REFERENCES bill_types (name),
    is_option      INTEGER NOT NULL DEFAULT 0,
    is_public      INTEGER NOT NULL DEFAULT 0,
    switch_price   BIGINT NOT NULL DEFAULT 0,
    multiplier     BIGINT NOT NULL DEFAULT 1000000,
    did_multiplier BIGINT NOT NULL DEFAULT 1000000,
    description    TEXT NOT NULL DEFAULT '',
    owner_id       BIGINT REFERENCES users (id) ON DELETE SET NULL
);

CREATE TABLE rate_entries (
    rates_id     BIGINT NOT NULL REFERENCES rates (id) ON DELETE CASCADE,
    direction_id BIGINT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 1 CHECK (priority >= 1),
    cost         BIGINT NOT NULL CHECK (cost >= 0), -- per minute
    route_id     BIGINT NOT NULL REFERENCES routes (id),
    PRIMARY KEY (rates_id, direction_id, priority)
);

-- Bumped by every change to directions, tariffs, entries, routes or bill types, so each
-- daemon sharing the database knows when to rebuild its in-memory rating index.
CREATE TABLE rating_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO rating_version (id, version) VALUES (1, 1);

-- Money held for a call between callPrepare and callFinish.
CREATE TABLE reservations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    extension     TEXT NOT NULL DEFAULT '',
    uniqueid      TEXT,
    destination   TEXT NOT NULL,
    prior         INTEGER NOT NULL,
    amount        BIGINT NOT NULL,
    max_call_time INTEGER NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX reservations_account ON reservations (account_id);
CREATE INDEX reservations_expiry ON reservations (expires_at);
CREATE UNIQUE INDEX reservations_call ON reservations (uniqueid, prior);

-- The event log: one record per callFinish (and other billed events).
CREATE TABLE call_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    account_id   BIGINT,
    username     TEXT NOT NULL DEFAULT '',
    extension    TEXT NOT NULL DEFAULT '',
    callerid     TEXT NOT NULL DEFAULT '',
    destination  TEXT NOT NULL DEFAULT '',
    direction    TEXT NOT NULL DEFAULT '',
    route        TEXT NOT NULL DEFAULT '',
    time         INTEGER NOT NULL DEFAULT 0,
    billed       INTEGER NOT NULL DEFAULT 0,
    cost         BIGINT NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT '',
    uniqueid     TEXT,
    prior        INTEGER NOT NULL DEFAULT 1,
    is_did       TEXT NOT NULL DEFAULT '',
    answer       TEXT NOT NULL DEFAULT '',
    info         TEXT NOT NULL DEFAULT '',
    debug        TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);
CREATE INDEX call_log_user ON call_log (user_id, id);
CREATE UNIQUE INDEX call_log_call ON call_log (uniqueid, prior);

CREATE TABLE did_pools (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    country     TEXT NOT NULL,
    area        TEXT NOT NULL,
    cost        BIGINT NOT NULL DEFAULT 0,
    installcost BIGINT NOT NULL DEFAULT 0,
    provider    TEXT NOT NULL DEFAULT 'local',
    username    TEXT NOT NULL DEFAULT '',
    password    TEXT NOT NULL DEFAULT '',
    param1      TEXT NOT NULL DEFAULT '',
    param2      TEXT NOT NULL DEFAULT '',
    param3      TEXT NOT NULL DEFAULT '',
    quantity    INTEGER NOT NULL DEFAULT 100
);

CREATE TABLE dids (
    did          TEXT PRIMARY KEY,
    owner_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    pool_id      BIGINT REFERENCES did_pools (id) ON DELETE SET NULL,
    comment      TEXT NOT NULL DEFAULT '',
    cost         BIGINT NOT NULL DEFAULT 0,
    expiration   BIGINT NOT NULL DEFAULT 0,
    enabled      INTEGER NOT NULL DEFAULT 1,
    auto_renew   INTEGER NOT NULL DEFAULT 1,
    renew_notify INTEGER NOT NULL DEFAULT 0,
    disa         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE did_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    did             TEXT NOT NULL REFERENCES dids (did) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    source          TEXT NOT NULL DEFAULT '',
    pattern         TEXT NOT NULL DEFAULT '',
    policy          TEXT NOT NULL DEFAULT 'ACCEPT',
    sms_action      TEXT NOT NULL DEFAULT '',
    sms_destination TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL DEFAULT '',
    server          TEXT NOT NULL DEFAULT '',
    destination     TEXT NOT NULL DEFAULT '',
    callerid        TEXT NOT NULL DEFAULT '',
    timeout         INTEGER NOT NULL DEFAULT 30,
    condition       TEXT NOT NULL DEFAULT '',
    input           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX did_rules_did ON did_rules (did, position);

CREATE TABLE aliases (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    alias        TEXT NOT NULL,
    destination  TEXT NOT NULL,
    extension    TEXT NOT NULL DEFAULT '',
    global       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE prepaid_codes (
    code           TEXT PRIMARY KEY,
    balance        BIGINT NOT NULL DEFAULT 0,
    access_level   INTEGER NOT NULL DEFAULT 10,
    owner_id       BIGINT REFERENCES users (id) ON DELETE SET NULL,
    target         TEXT NOT NULL DEFAULT '',
    signature      TEXT NOT NULL DEFAULT '',
    activated_to   TEXT NOT NULL DEFAULT '',
    activated_at   BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE sms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    did        TEXT NOT NULL DEFAULT '',
    src        TEXT NOT NULL,
    dest       TEXT NOT NULL,
    msg        TEXT NOT NULL,
    status     INTEGER NOT NULL DEFAULT 0,
    type       TEXT NOT NULL DEFAULT 'in',
    external_id TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE tickets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- the message id
    ticket     BIGINT NOT NULL,
    sender_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    recipient  TEXT NOT NULL,
    reply      BIGINT NOT NULL DEFAULT 0,
    subject    TEXT NOT NULL DEFAULT '',
    message    TEXT NOT NULL DEFAULT '',
    comment    TEXT NOT NULL DEFAULT '',
    status     INTEGER NOT NULL DEFAULT 1,
    assigned   TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX tickets_ticket ON tickets (ticket);

CREATE TABLE news (
    id             TEXT PRIMARY KEY,
    is_broadcast   INTEGER NOT NULL DEFAULT 0,
    for_user       TEXT NOT NULL DEFAULT '',
    access         INTEGER NOT NULL DEFAULT 0,
    language       TEXT NOT NULL DEFAULT '',
    typ            TEXT NOT NULL DEFAULT 'info',
    broadcast      TEXT NOT NULL DEFAULT '',
    header         TEXT NOT NULL DEFAULT '',
    message        TEXT NOT NULL DEFAULT '',
    author_id      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    updated_by_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE invoices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    account_id   BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    amount       BIGINT NOT NULL,
    comission    BIGINT NOT NULL DEFAULT 0,
    vat          BIGINT NOT NULL DEFAULT 0,
    status       INTEGER NOT NULL DEFAULT 0,
    msg          TEXT NOT NULL DEFAULT '',
    method       TEXT NOT NULL DEFAULT '',
    handler      TEXT NOT NULL DEFAULT '',
    billing_data TEXT NOT NULL DEFAULT '',
    txdata       TEXT NOT NULL DEFAULT '',
    bank         INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    valid_thru   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sim_cards (
    iccid             TEXT PRIMARY KEY,
    msisdn            TEXT NOT NULL DEFAULT '',
    provider          TEXT NOT NULL DEFAULT '',
    owner_id          BIGINT REFERENCES users (id) ON DELETE SET NULL,
    puk1              TEXT NOT NULL DEFAULT '',
    puk2              TEXT NOT NULL DEFAULT '',
    extension         TEXT NOT NULL DEFAULT '',
    callback_cid      TEXT NOT NULL DEFAULT '',
    allow_direct_sms  INTEGER NOT NULL DEFAULT 0,
    enabled           INTEGER NOT NULL DEFAULT 0,
    lastnetwork       TEXT NOT NULL DEFAULT '',
    lastnetwork_at    BIGINT NOT NULL DEFAULT 0
);

-- Previous dialplan and interface files of each SIP server, for restoreDialplan.
CREATE TABLE dialplan_versions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id  BIGINT NOT NULL REFERENCES sip_servers (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL, -- dialplan or interface
    version    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
