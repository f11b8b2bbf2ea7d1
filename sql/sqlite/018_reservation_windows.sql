-- Reservation windows (billing/windows.go, DECISIONS §5): a call that can be cut through
-- AMI reserves one window at a time. win is the window in seconds while the daemon
-- extends the reservation (0: a plain reservation, or one no longer extended); covered is
-- the seconds paid for, counted from win_start (the Service clock at callPrepare);
-- win_price is the call's price, to cost the next window; watcher is the daemon that
-- extends it.
ALTER TABLE reservations ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE reservations ADD COLUMN sip_server TEXT NOT NULL DEFAULT '';
ALTER TABLE reservations ADD COLUMN win INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN win_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN covered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN win_price BLOB;
ALTER TABLE reservations ADD COLUMN watcher TEXT NOT NULL DEFAULT '';
-- Partial: a call path without windows writes nothing more into it.
CREATE INDEX reservations_windows ON reservations (watcher, win_start) WHERE win > 0;

-- The daemons that extend windows, each with a lease it renews every round: the calls of
-- a daemon whose lease ran out are taken over by another.
CREATE TABLE window_watchers (
    id          TEXT PRIMARY KEY,
    lease_until BIGINT NOT NULL
);
