-- Bumped by triggers in the transaction of every change to the tables the daemons cache
-- for the call path (users, SIP accounts, SIP servers, currencies), whoever makes it:
-- each request reads it once and a daemon drops its cache when it moved.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 1);

CREATE FUNCTION bump_directory_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE directory_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_dir AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version();
CREATE TRIGGER extensions_dir AFTER INSERT OR UPDATE OR DELETE ON extensions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version();
CREATE TRIGGER sip_servers_dir AFTER INSERT OR UPDATE OR DELETE ON sip_servers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version();
CREATE TRIGGER currencies_dir AFTER INSERT OR UPDATE OR DELETE ON currencies
    FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version();
