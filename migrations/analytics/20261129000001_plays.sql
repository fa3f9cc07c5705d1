-- Every play a listener made: polled from Spotify's recently-played, or imported from the
-- listener's privacy export. One row per play; a play seen twice (a replayed poll, an
-- import run again, an export overlapping the polls) is stored once: the primary key
-- catches the same play, and writers skip a play of the same track by the same listener
-- within a minute of one already stored (the two sources' clocks differ by seconds).
-- `listening_events` was never written; plays replaces it.
DROP TABLE IF EXISTS listening_events;
CREATE TABLE plays (
    -- The listener: users.spotify_id on main (the foreign table is joined to it there).
    spotify_id  TEXT NOT NULL CHECK (spotify_id <> ''),
    -- When the play ended (Spotify's played_at; the export's ts), UTC.
    played_at   TIMESTAMPTZ NOT NULL,
    -- The Spotify track id, or, for a play without one (the older export, local files),
    -- 'name:' and an md5 of the lower-cased artist and track names.
    track_key   TEXT NOT NULL CHECK (track_key <> ''),
    track_id    TEXT,
    track_name  TEXT NOT NULL,
    -- Names are kept on the play, so what a panel groups by is on this node and the
    -- GROUP BY runs here, not on main (a join with main's tables is never pushed down).
    artist_name TEXT NOT NULL,
    artist_id   TEXT,
    album_name  TEXT,
    ms_played   INTEGER NOT NULL CHECK (ms_played >= 0),
    source      TEXT NOT NULL CHECK (source IN ('recent', 'extended', 'account')),
    PRIMARY KEY (spotify_id, played_at, track_key)
);
-- "Listeners on this instance" of an artist, and an artist's plays over time.
CREATE INDEX plays_artist_idx ON plays (artist_name, spotify_id);
