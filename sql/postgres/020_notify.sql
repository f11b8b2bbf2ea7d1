-- Other daemons learn of directory and rating changes by LISTEN/NOTIFY instead of reading
-- the version rows on a timer: the transaction that bumps a version also sends a
-- notification, delivered to every listener when (and only if) it commits. One channel
-- for the database; the payload names the schema (several installations, or the tests,
-- may share a database) and what changed. Identical payloads in one transaction are
-- sent once, so a bulk change costs one notification.
CREATE FUNCTION notify_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('narayana_changes', current_schema() || ' ' || TG_ARGV[0]);
    RETURN NULL;
END
$$;

CREATE TRIGGER directory_version_notify AFTER UPDATE ON directory_version
    FOR EACH ROW EXECUTE FUNCTION notify_version('directory');
CREATE TRIGGER rating_version_notify AFTER UPDATE ON rating_version
    FOR EACH ROW EXECUTE FUNCTION notify_version('rating');
