-- PostgreSQL's 020 adds LISTEN/NOTIFY for directory and rating changes. SQLite has one
-- daemon per file and nothing to notify: this keeps both dialects at the same schema
-- version, which a dump names (narayanad dump / load).
SELECT 1;
