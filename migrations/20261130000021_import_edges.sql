-- Imports that can never wedge (issue 22): entries skipped as unreadable are counted; the
-- owner can cancel a running import; an import that meets stores not answering records
-- since when, and fails with a sentence once that has lasted IMPORT_STORE_WAIT_SECS.
ALTER TABLE imports ADD COLUMN unreadable BIGINT NOT NULL DEFAULT 0;
-- The first failed try since the import last moved on (NULL while it moves on).
ALTER TABLE imports ADD COLUMN stuck_since TIMESTAMPTZ;
ALTER TABLE imports DROP CONSTRAINT imports_status_check;
ALTER TABLE imports ADD CONSTRAINT imports_status_check
    CHECK (status IN ('reading', 'storing', 'done', 'failed', 'canceled'));
