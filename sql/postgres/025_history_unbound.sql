-- callFinish writes a call record and a ledger row on every call, and each foreign key
-- costs PostgreSQL a check through its trigger machinery: measured, a tenth of the
-- server's CPU per call cycle (bench/NOTES.md). What the keys guarded is kept otherwise:
-- a ledger row is written only by post, in the statement that updates its account, from
-- the row that UPDATE found (billing/ledger.go), and deleteAccount refuses an account with
-- ledger rows; deleteUser clears its call records' user_id itself (ON DELETE SET NULL
-- did). `narayanad load` counts ledger rows naming no account as a failed check.
ALTER TABLE call_log DROP CONSTRAINT IF EXISTS call_log_user_id_fkey;
ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_account_id_fkey;
