-- Recently-played ingest. Spotify keeps a listener's last 50 plays; the poller asks for
-- the plays after `after_ms` (the newest play already taken, Unix ms) and moves the cursor
-- only once they are stored: on the analytics node, or, while it is down, here in
-- play_stash until it is back. A poll repeated after a crash between the two stores the
-- same plays again, which the analytics node ignores (same listener, time and track).
CREATE TABLE play_cursors (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    after_ms   BIGINT NOT NULL DEFAULT 0 CHECK (after_ms >= 0),
    polled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Failed polls in a row (the next waits longer), and the last one's reason.
    failures   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

-- Plays fetched while the analytics node was down, delivered (then deleted) when it is back.
CREATE TABLE play_stash (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    spotify_id TEXT NOT NULL,
    plays      JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
