-- Shards: every table keyed by listener is hash-partitioned on spotify_id into 8
-- partitions, `<table>_p0` ... `<table>_p7`, on every analytics node. main's schema
-- `analytics` has the same partitioned tables, whose partitions are foreign tables, each
-- pointing at that leaf on the node where the partition is placed (main's
-- shard_placements). Both sides use PostgreSQL's own hash partitioning with the same
-- modulus, so a listener's rows are in the same partition here and on main, and all six
-- tables of one listener are in the same partition (colocated): the triggers below and
-- set_listener_zone() only ever touch one node.
--
-- The leaves exist on every node; only the node a partition is placed on holds its rows.
-- `personalify shards move` copies a partition to another node (through the parents, so
-- the rollups there are built by the triggers) and then empties the leaves it left.
--
-- The rows already here are kept: copied aside, the tables re-created partitioned, and
-- the plays written back through the triggers, which rebuild every rollup.

CREATE TEMP TABLE moving_zones ON COMMIT DROP AS SELECT * FROM listener_zones;
CREATE TEMP TABLE moving_plays ON COMMIT DROP AS SELECT * FROM plays;
DROP TABLE plays, plays_by_hour, plays_by_track, plays_by_artist, plays_by_listener,
           listener_zones;

CREATE TABLE plays (
    spotify_id  TEXT NOT NULL CHECK (spotify_id <> ''),
    played_at   TIMESTAMPTZ NOT NULL,
    track_key   TEXT NOT NULL CHECK (track_key <> ''),
    track_id    TEXT,
    track_name  TEXT NOT NULL,
    artist_name TEXT NOT NULL,
    artist_id   TEXT,
    album_name  TEXT,
    ms_played   INTEGER NOT NULL CHECK (ms_played >= 0),
    source      TEXT NOT NULL CHECK (source IN ('recent', 'extended', 'account')),
    played_hour TIMESTAMPTZ
        GENERATED ALWAYS AS (timezone('UTC', date_trunc('hour', timezone('UTC', played_at)))) STORED,
    PRIMARY KEY (spotify_id, played_at, track_key)
) PARTITION BY HASH (spotify_id);
CREATE INDEX plays_artist_idx ON plays (artist_name, spotify_id);

CREATE TABLE listener_zones (
    spotify_id TEXT PRIMARY KEY,
    time_zone  TEXT NOT NULL
) PARTITION BY HASH (spotify_id);

CREATE TABLE plays_by_hour (
    spotify_id TEXT NOT NULL,
    day        DATE NOT NULL,
    hour       SMALLINT NOT NULL CHECK (hour BETWEEN 0 AND 23),
    dow        SMALLINT NOT NULL CHECK (dow BETWEEN 1 AND 7),
    ms         BIGINT NOT NULL,
    plays      BIGINT NOT NULL,
    PRIMARY KEY (spotify_id, day, hour)
) PARTITION BY HASH (spotify_id);

CREATE TABLE plays_by_track (
    spotify_id TEXT NOT NULL,
    track_key  TEXT NOT NULL,
    ms         BIGINT NOT NULL,
    plays      BIGINT NOT NULL,
    PRIMARY KEY (spotify_id, track_key)
) PARTITION BY HASH (spotify_id);

CREATE TABLE plays_by_artist (
    spotify_id  TEXT NOT NULL,
    artist_name TEXT NOT NULL,
    ms          BIGINT NOT NULL,
    plays       BIGINT NOT NULL,
    PRIMARY KEY (spotify_id, artist_name)
) PARTITION BY HASH (spotify_id);
CREATE INDEX plays_by_artist_artist_idx ON plays_by_artist (artist_name);

CREATE TABLE plays_by_listener (
    spotify_id TEXT PRIMARY KEY,
    ms         BIGINT NOT NULL,
    plays      BIGINT NOT NULL
) PARTITION BY HASH (spotify_id);

DO $$
DECLARE
    t TEXT;
    r INTEGER;
BEGIN
    FOREACH t IN ARRAY ARRAY['plays', 'listener_zones', 'plays_by_hour', 'plays_by_track',
                             'plays_by_artist', 'plays_by_listener'] LOOP
        FOR r IN 0..7 LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS 8, REMAINDER %s)',
                           t || '_p' || r, t, r);
        END LOOP;
    END LOOP;
END
$$;

-- As before, plus: a TRUNCATE of one leaf of plays (a partition moved away) empties that
-- partition's rollups only.
CREATE OR REPLACE FUNCTION plays_rollup() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    changes TEXT;
    sign INTEGER;
    leaf TEXT;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF TG_TABLE_NAME = 'plays' THEN
            TRUNCATE plays_by_hour, plays_by_track, plays_by_artist, plays_by_listener;
        ELSE
            leaf := substring(TG_TABLE_NAME FROM '_p[0-9]+$');
            EXECUTE format('TRUNCATE %I, %I, %I, %I', 'plays_by_hour' || leaf,
                           'plays_by_track' || leaf, 'plays_by_artist' || leaf,
                           'plays_by_listener' || leaf);
        END IF;
        RETURN NULL;
    END IF;
    FOR changes, sign IN
        SELECT t, s FROM (VALUES ('old_rows', -1, 1), ('new_rows', 1, 2)) v (t, s, o)
         WHERE (t = 'old_rows' AND TG_OP IN ('DELETE', 'UPDATE'))
            OR (t = 'new_rows' AND TG_OP IN ('INSERT', 'UPDATE'))
         ORDER BY o
    LOOP
        EXECUTE format(
            'SELECT count(pg_advisory_xact_lock_shared(hashtextextended(''plays-zone:'' || spotify_id, 0)))
               FROM (SELECT DISTINCT spotify_id FROM %I ORDER BY 1) l', changes);
        EXECUTE format(
            'INSERT INTO plays_by_hour AS r (spotify_id, day, hour, dow, ms, plays)
             SELECT spotify_id, day, hour, dow, $1 * sum(ms), $1 * sum(n)
               FROM (SELECT q.spotify_id, q.ms, q.n,
                            (q.at AT TIME ZONE COALESCE(z.time_zone, ''UTC''))::date AS day,
                            extract(hour FROM q.at AT TIME ZONE COALESCE(z.time_zone, ''UTC''))::smallint AS hour,
                            extract(isodow FROM q.at AT TIME ZONE COALESCE(z.time_zone, ''UTC''))::smallint AS dow
                       FROM (SELECT spotify_id,
                                    date_bin(''15 minutes'', played_at, timestamptz ''2000-01-01 00:00Z'') AS at,
                                    sum(ms_played) AS ms, count(*) AS n
                               FROM %I GROUP BY 1, 2) q
                       LEFT JOIN listener_zones z USING (spotify_id)) c
              GROUP BY spotify_id, day, hour, dow
              ORDER BY spotify_id, day, hour
             ON CONFLICT (spotify_id, day, hour)
             DO UPDATE SET ms = r.ms + excluded.ms, plays = r.plays + excluded.plays', changes)
            USING sign;
        EXECUTE format(
            'INSERT INTO plays_by_track AS r (spotify_id, track_key, ms, plays)
             SELECT spotify_id, track_key, $1 * sum(ms_played), $1 * count(*)
               FROM %I GROUP BY spotify_id, track_key ORDER BY spotify_id, track_key
             ON CONFLICT (spotify_id, track_key)
             DO UPDATE SET ms = r.ms + excluded.ms, plays = r.plays + excluded.plays', changes)
            USING sign;
        EXECUTE format(
            'INSERT INTO plays_by_artist AS r (spotify_id, artist_name, ms, plays)
             SELECT spotify_id, artist_name, $1 * sum(ms_played), $1 * count(*)
               FROM %I GROUP BY spotify_id, artist_name ORDER BY spotify_id, artist_name
             ON CONFLICT (spotify_id, artist_name)
             DO UPDATE SET ms = r.ms + excluded.ms, plays = r.plays + excluded.plays', changes)
            USING sign;
        EXECUTE format(
            'INSERT INTO plays_by_listener AS r (spotify_id, ms, plays)
             SELECT spotify_id, $1 * sum(ms_played), $1 * count(*)
               FROM %I GROUP BY spotify_id ORDER BY spotify_id
             ON CONFLICT (spotify_id)
             DO UPDATE SET ms = r.ms + excluded.ms, plays = r.plays + excluded.plays', changes)
            USING sign;
        IF sign < 0 THEN
            EXECUTE format('DELETE FROM plays_by_hour WHERE plays <= 0
                             AND spotify_id IN (SELECT spotify_id FROM %I)', changes);
            EXECUTE format('DELETE FROM plays_by_track WHERE plays <= 0
                             AND spotify_id IN (SELECT spotify_id FROM %I)', changes);
            EXECUTE format('DELETE FROM plays_by_artist WHERE plays <= 0
                             AND spotify_id IN (SELECT spotify_id FROM %I)', changes);
            EXECUTE format('DELETE FROM plays_by_listener WHERE plays <= 0
                             AND spotify_id IN (SELECT spotify_id FROM %I)', changes);
        END IF;
    END LOOP;
    RETURN NULL;
END
$fn$;

-- On the parent (the app's writes, routed to this node, name `plays`) and on each leaf
-- (main's writes through postgres_fdw name the leaf; a statement-level trigger fires only
-- for the table its statement names, so each write is counted once).
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['plays', 'plays_p0', 'plays_p1', 'plays_p2', 'plays_p3',
                             'plays_p4', 'plays_p5', 'plays_p6', 'plays_p7'] LOOP
        EXECUTE format('CREATE TRIGGER plays_rollup_insert AFTER INSERT ON %I
                        REFERENCING NEW TABLE AS new_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup()', t);
        EXECUTE format('CREATE TRIGGER plays_rollup_update AFTER UPDATE ON %I
                        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup()', t);
        EXECUTE format('CREATE TRIGGER plays_rollup_delete AFTER DELETE ON %I
                        REFERENCING OLD TABLE AS old_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup()', t);
        EXECUTE format('CREATE TRIGGER plays_rollup_truncate AFTER TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup()', t);
    END LOOP;
END
$$;

-- The rows that were here: zones first, so the plays' hours are counted in them.
INSERT INTO listener_zones SELECT * FROM moving_zones;
INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name, artist_name,
                   artist_id, album_name, ms_played, source)
SELECT spotify_id, played_at, track_key, track_id, track_name, artist_name, artist_id,
       album_name, ms_played, source
  FROM moving_plays;

-- postgres_fdw runs main's statements here with search_path = pg_catalog, so a write
-- through main (to a leaf) would not find the rollups by their bare names.
ALTER FUNCTION plays_rollup() SET search_path = public;
ALTER FUNCTION set_listener_zone(TEXT, TEXT) SET search_path = public;
