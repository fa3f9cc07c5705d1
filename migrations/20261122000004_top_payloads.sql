-- The dashboard's read model (issue #10). A sync writes, in its own transaction, each
-- range's finished payload: the lists with their movement since the previous sync (the
-- previous ranks are the rows the sync replaces) and the genre shares. The Redis entry
-- `top:{spotify_id}:{time_range}` is a copy of `payload`, so a cache miss is one
-- primary-key read of this table and the dashboard never touches MongoDB.
CREATE TABLE top_payloads (
    spotify_id  TEXT NOT NULL REFERENCES users (spotify_id) ON DELETE CASCADE,
    time_range  TEXT NOT NULL CHECK (time_range IN ('short_term', 'medium_term', 'long_term')),
    sync_run_id BIGINT NOT NULL REFERENCES sync_runs (id),
    payload     JSONB NOT NULL,
    PRIMARY KEY (spotify_id, time_range)
);

-- "The latest N syncs of a user" for the history and artist pages, which then read
-- exactly those snapshots from MongoDB by _id (bounded, whatever the history's length).
CREATE INDEX sync_runs_user_succeeded_idx ON sync_runs (user_id, finished_at DESC, id DESC)
    WHERE status = 'succeeded';
