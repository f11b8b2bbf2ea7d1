-- PostgreSQL drops the foreign keys of call_log and ledger here (sql/postgres/025). SQLite
-- keeps them: its checks are an index lookup in the writer, and dropping one would rebuild
-- both tables, the largest of a database. deleteUser clears its call records' user_id
-- itself on both databases, and the ledger is written only by post on both.
SELECT 1;
