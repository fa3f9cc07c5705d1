-- The remote node (reached from `main` through postgres_fdw): listening events from
-- Spotify's recently-played endpoint. One row per play; a replayed import changes nothing.
CREATE TABLE listening_events (
    id          BIGSERIAL PRIMARY KEY,
    spotify_id  TEXT NOT NULL CHECK (spotify_id <> ''),
    track_id    TEXT NOT NULL CHECK (track_id <> ''),
    artist_ids  TEXT[] NOT NULL DEFAULT '{}',
    played_at   TIMESTAMPTZ NOT NULL,
    duration_ms INTEGER CHECK (duration_ms IS NULL OR duration_ms >= 0),
    UNIQUE (spotify_id, played_at)
);
CREATE INDEX listening_events_track_idx ON listening_events (track_id);
