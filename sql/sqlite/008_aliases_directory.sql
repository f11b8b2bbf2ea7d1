-- callPrepare resolves aliases from the directory cache: changes to aliases drop it too.
CREATE TRIGGER aliases_ins_dir AFTER INSERT ON aliases BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_upd_dir AFTER UPDATE ON aliases BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_del_dir AFTER DELETE ON aliases BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
