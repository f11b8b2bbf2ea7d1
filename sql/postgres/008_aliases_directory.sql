-- callPrepare resolves aliases from the directory cache: changes to aliases drop it too.
CREATE TRIGGER aliases_dir AFTER INSERT OR UPDATE OR DELETE ON aliases
    FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version();
