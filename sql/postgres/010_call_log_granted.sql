-- What callPrepare granted a call (its MaxCallTime; NULL when the call had no reservation)
-- and whether callFinish reported it lasting more than 5 s longer: a dialplan without L().
ALTER TABLE call_log ADD COLUMN granted INTEGER;
ALTER TABLE call_log ADD COLUMN over_grant INTEGER NOT NULL DEFAULT 0;
