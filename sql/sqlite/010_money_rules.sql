-- What callPrepare granted a call (its MaxCallTime; NULL when the call had no reservation)
-- and whether callFinish reported it lasting more than 5 s longer: a dialplan without L().
ALTER TABLE call_log ADD COLUMN granted INTEGER;
ALTER TABLE call_log ADD COLUMN over_grant INTEGER NOT NULL DEFAULT 0;

-- Ledger rows are never deleted (DECISIONS §4): the code refuses to delete an account
-- with a history, and the database refuses anything that would remove a row (the
-- accounts foreign key's cascade included).
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are never deleted'); END;
