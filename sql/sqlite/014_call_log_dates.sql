-- Call records are read by date: getLogs' from/to (one user's, newest first) and
-- `narayanad export calls` (everyone's, by date). (user_id, created_at, id) serves the
-- first and every per-user read call_log_user served; created_at the second.
DROP INDEX call_log_user;
CREATE INDEX call_log_user_time ON call_log (user_id, created_at, id);
CREATE INDEX call_log_created ON call_log (created_at);
