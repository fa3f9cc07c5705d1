-- An import now stores its plays straight into plays, all in one transaction (see
-- server::plays::import): a cut-off import rolls back; nothing is staged any more.
DROP TABLE IF EXISTS import_staging;
