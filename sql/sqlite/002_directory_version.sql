-- Bumped by triggers in the transaction of every change to the tables the daemons cache
-- for the call path (users, SIP accounts, SIP servers, currencies), whoever makes it:
-- each request reads it once and a daemon drops its cache when it moved.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 1);

CREATE TRIGGER users_ins_dir AFTER INSERT ON users BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_upd_dir AFTER UPDATE ON users BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_del_dir AFTER DELETE ON users BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER extensions_ins_dir AFTER INSERT ON extensions BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER extensions_upd_dir AFTER UPDATE ON extensions BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER extensions_del_dir AFTER DELETE ON extensions BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER sip_servers_ins_dir AFTER INSERT ON sip_servers BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER sip_servers_upd_dir AFTER UPDATE ON sip_servers BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER sip_servers_del_dir AFTER DELETE ON sip_servers BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER currencies_ins_dir AFTER INSERT ON currencies BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER currencies_upd_dir AFTER UPDATE ON currencies BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER currencies_del_dir AFTER DELETE ON currencies BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
