-- The seed design's `users` table, kept by name, with what real use needs:
-- NOT NULL identity, timestamps, and no empty ids.
CREATE TABLE users (
    id           BIGSERIAL PRIMARY KEY,
    spotify_id   TEXT NOT NULL UNIQUE CHECK (spotify_id <> '' AND length(spotify_id) <= 128),
    display_name TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
