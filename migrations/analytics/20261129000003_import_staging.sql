-- Plays of an import in progress (see main's `imports`): moved into plays in one
-- transaction when the whole export has been read, then deleted. A batch staged twice
-- (a resumed import re-reads the batch whose progress was not recorded) is kept once.
CREATE TABLE import_staging (
    import_id   BIGINT NOT NULL,
    spotify_id  TEXT NOT NULL,
    played_at   TIMESTAMPTZ NOT NULL,
    track_key   TEXT NOT NULL,
    track_id    TEXT,
    track_name  TEXT NOT NULL,
    artist_name TEXT NOT NULL,
    artist_id   TEXT,
    album_name  TEXT,
    ms_played   INTEGER NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (import_id, spotify_id, played_at, track_key)
);
-- What a finished import stored, written in the transaction that moved its plays, so a
-- result survives main being unreachable at that moment.
CREATE TABLE import_results (
    import_id BIGINT PRIMARY KEY,
    stored    BIGINT NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
