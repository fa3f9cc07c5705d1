-- Top data (issue #4). The seed design's tables keep their names (artists, tracks,
-- user_artists, user_tracks) and gain what the seed lost: rank, time range and sync time.

CREATE TABLE artists (
    id          TEXT PRIMARY KEY CHECK (id <> ''),
    name        TEXT NOT NULL,
    popularity  INTEGER CHECK (popularity BETWEEN 0 AND 100),  -- NULL: Spotify did not say
    followers   BIGINT CHECK (followers >= 0),
    image_url   TEXT,
    -- false when Spotify sent no genres at all (unknown), true when it sent a list (maybe empty)
    genres_known BOOLEAN NOT NULL DEFAULT false,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE artist_genres (
    artist_id TEXT NOT NULL REFERENCES artists (id) ON DELETE CASCADE,
    genre     TEXT NOT NULL CHECK (genre <> ''),
    PRIMARY KEY (artist_id, genre)
);
CREATE INDEX artist_genres_genre_idx ON artist_genres (genre);

CREATE TABLE tracks (
    id              TEXT PRIMARY KEY CHECK (id <> ''),
    name            TEXT NOT NULL,
    popularity      INTEGER CHECK (popularity BETWEEN 0 AND 100),
    preview_url     TEXT,
    album_id        TEXT,
    album_name      TEXT,
    album_image_url TEXT,
    duration_ms     INTEGER CHECK (duration_ms >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Track -> artists, in credit order.
CREATE TABLE track_artists (
    track_id  TEXT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    position  SMALLINT NOT NULL CHECK (position >= 0),
    artist_id TEXT NOT NULL,
    artist_name TEXT NOT NULL,
    PRIMARY KEY (track_id, position)
);
CREATE INDEX track_artists_artist_idx ON track_artists (artist_id);

CREATE TABLE sync_runs (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    trigger       TEXT NOT NULL CHECK (trigger IN ('login', 'manual', 'schedule', 'first_visit', 'bench')),
    status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    artists_count INTEGER,
    tracks_count  INTEGER,
    error         TEXT,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
-- One running sync per user, whichever process starts it.
CREATE UNIQUE INDEX sync_runs_one_running_idx ON sync_runs (user_id) WHERE status = 'running';
CREATE INDEX sync_runs_user_finished_idx ON sync_runs (user_id, finished_at DESC);

-- The current top lists. A sync replaces a (user, range) list in its transaction; history
-- lives in MongoDB. Ranks are unique per user and range; the sync writes 1..N.
CREATE TABLE user_artists (
    spotify_id  TEXT NOT NULL REFERENCES users (spotify_id) ON DELETE CASCADE,
    time_range  TEXT NOT NULL CHECK (time_range IN ('short_term', 'medium_term', 'long_term')),
    rank        SMALLINT NOT NULL CHECK (rank BETWEEN 1 AND 100),
    artist_id   TEXT NOT NULL REFERENCES artists (id),
    sync_run_id BIGINT NOT NULL REFERENCES sync_runs (id),
    synced_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (spotify_id, time_range, rank),
    UNIQUE (spotify_id, time_range, artist_id)
);
CREATE INDEX user_artists_artist_idx ON user_artists (artist_id);

CREATE TABLE user_tracks (
    spotify_id  TEXT NOT NULL REFERENCES users (spotify_id) ON DELETE CASCADE,
    time_range  TEXT NOT NULL CHECK (time_range IN ('short_term', 'medium_term', 'long_term')),
    rank        SMALLINT NOT NULL CHECK (rank BETWEEN 1 AND 100),
    track_id    TEXT NOT NULL REFERENCES tracks (id),
    sync_run_id BIGINT NOT NULL REFERENCES sync_runs (id),
    synced_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (spotify_id, time_range, rank),
    UNIQUE (spotify_id, time_range, track_id)
);
CREATE INDEX user_tracks_track_idx ON user_tracks (track_id);

-- Transactional outbox: each sync's MongoDB snapshots, written in the sync's transaction
-- and delivered to MongoDB afterwards (now, or when MongoDB is back). The id is the
-- history document's _id, so a redelivery cannot duplicate it.
CREATE TABLE mongo_outbox (
    id           BIGSERIAL PRIMARY KEY,
    snapshot_id  TEXT NOT NULL UNIQUE,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX mongo_outbox_pending_idx ON mongo_outbox (id) WHERE delivered_at IS NULL;
