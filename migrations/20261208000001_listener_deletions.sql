-- Accounts being deleted (server::deletion). A row is written before anything is deleted
-- and lives on, without the Spotify id, for a while after: every writer of a listener's
-- plays, zone or imports (server::shards::Shard::lock) takes a shared lock on the listener
-- and then looks here, and a deletion takes that lock exclusively once after writing its
-- row, so no write of theirs lands after the deletion has begun.
CREATE TABLE listener_deletions (
    -- md5 of the Spotify id: what writers look up, and all that is kept once done.
    listener_key TEXT PRIMARY KEY,
    -- While deleting: who, to resume after a restart; NULL once done.
    spotify_id   TEXT,
    user_id      BIGINT,
    status       TEXT NOT NULL CHECK (status IN ('deleting', 'done')),
    -- What is left to delete, in words (shown to the person while it finishes).
    remaining    TEXT,
    last_error   TEXT,
    leased_by    BIGINT,
    leased_until TIMESTAMPTZ,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    CHECK (status = 'done' OR spotify_id IS NOT NULL)
);
CREATE INDEX listener_deletions_unfinished ON listener_deletions (started_at)
    WHERE status = 'deleting';
