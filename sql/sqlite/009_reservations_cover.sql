-- What an account may still spend sums its open reservations on every callPrepare: an
-- index holding every column that sum reads answers it without visiting the table.
DROP INDEX reservations_account;
CREATE INDEX reservations_held ON reservations (account_id, expires_at, amount, uniqueid, prior);
