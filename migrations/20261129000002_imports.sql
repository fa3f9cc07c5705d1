-- Imports of a listener's privacy export. The uploaded file waits under IMPORT_DIR while
-- the import runs; plays are staged on the analytics node (import_staging) and moved into
-- plays in one transaction at the end, so an import cut off midway leaves no plays half
-- imported: it resumes from entries_done (after a restart, or once the analytics node is
-- back), or fails and its staging is dropped.
CREATE TABLE imports (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- As uploaded, for the person (shown, never used as a path).
    file_name    TEXT NOT NULL CHECK (length(file_name) <= 255),
    bytes        BIGINT NOT NULL CHECK (bytes >= 0),
    status       TEXT NOT NULL CHECK (status IN ('reading', 'storing', 'done', 'failed')),
    -- Entries read and staged: where a resumed import starts; of them, plays kept and
    -- entries skipped by the rule (plays::export): podcasts, unknown, under 30 s.
    entries_done BIGINT NOT NULL DEFAULT 0,
    plays_read   BIGINT NOT NULL DEFAULT 0,
    podcasts     BIGINT NOT NULL DEFAULT 0,
    unknown      BIGINT NOT NULL DEFAULT 0,
    short        BIGINT NOT NULL DEFAULT 0,
    -- At the end: how many of the plays were new (the rest the analytics node had).
    stored       BIGINT,
    error        TEXT,
    -- The process running it, until when (it renews the lease with every batch): a
    -- restarted process resumes imports whose lease has ended.
    leased_by    BIGINT,
    leased_until TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
-- One import at a time per listener.
CREATE UNIQUE INDEX imports_one_running ON imports (user_id) WHERE status IN ('reading', 'storing');
