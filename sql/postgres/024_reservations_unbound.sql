-- A reservation lives from callPrepare to callFinish. Its foreign keys to accounts and
-- users cost every callPrepare two checks, and the one to users a row lock written on the
-- user's row: measured, a fifth of PostgreSQL's CPU per callPrepare (bench/NOTES.md).
-- deleteUser and deleteAccount delete the reservations themselves instead.
ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_account_id_fkey;
ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_user_id_fkey;
