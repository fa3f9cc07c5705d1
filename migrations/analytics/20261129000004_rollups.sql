-- Rollups of plays, kept on this node as plays are written, so a panel reads a few hundred
-- rows instead of aggregating every play of a listener (200,000 for a heavy one) on each
-- page load. Maintained by statement-level triggers over the transition tables of each
-- INSERT, UPDATE and DELETE on plays (one aggregate per statement, not per row), and
-- emptied by a TRUNCATE of plays. Each is imported into main's `analytics` schema.
--
-- Days and hours are in the listener's time zone (listener_zones, UTC when unset), taken
-- from each play's exact time: set_listener_zone() rebuilds the listener's rows.

CREATE TABLE listener_zones (
    spotify_id TEXT PRIMARY KEY,
    -- An IANA zone name PostgreSQL knows (pg_timezone_names), e.g. 'Europe/Berlin'.
    time_zone  TEXT NOT NULL
);

-- Per listener, local day and hour: the calendar, streaks and the weekday x hour grid.
CREATE TABLE plays_by_hour (
    spotify_id TEXT NOT NULL,
    day        DATE NOT NULL,
    hour       SMALLINT NOT NULL CHECK (hour BETWEEN 0 AND 23),
    -- ISO weekday of `day` (1 = Monday), stored: extract() is not pushed down by
    -- postgres_fdw (its field name is a constant text argument), a plain column is.
    dow        SMALLINT NOT NULL CHECK (dow BETWEEN 1 AND 7),
    ms         BIGINT NOT NULL,
    plays      BIGINT NOT NULL,
    PRIMARY KEY (spotify_id, day, hour)
);

-- Per listener and track: how many different tracks.
CREATE TABLE plays_by_track (
    spotify_id TEXT NOT NULL,
    track_key  TEXT NOT NULL,
    ms         BIGINT NOT NULL,
    plays      BIGINT NOT NULL,
    PRIMARY KEY (spotify_id, track_key)
);

-- Per listener and artist: how many different artists, and an artist's listeners here.
CREATE TABLE plays_by_artist (
    spotify_id  TEXT NOT NULL,
    artist_name TEXT NOT NULL,
    ms          BIGINT NOT NULL,
    plays       BIGINT NOT NULL,
    PRIMARY KEY (spotify_id, artist_name)
);
CREATE INDEX plays_by_artist_artist_idx ON plays_by_artist (artist_name);

-- Per listener: totals, and the instance-wide count of listeners and plays.
CREATE TABLE plays_by_listener (
    spotify_id TEXT PRIMARY KEY,
    ms         BIGINT NOT NULL,
    plays      BIGINT NOT NULL
);

-- Add the plays of each statement on plays to every rollup: old_rows with -1 (DELETE,
-- UPDATE), then new_rows with +1 (INSERT, UPDATE); the transition tables are visible to
-- this function's own statements only, hence the dynamic SQL in one body. The listeners'
-- zone locks are taken first (shared), so a play is never counted in a time zone being
-- replaced (set_listener_zone takes the lock exclusively).
CREATE FUNCTION plays_rollup() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    changes TEXT;
    sign INTEGER;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE plays_by_hour, plays_by_track, plays_by_artist, plays_by_listener;
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
        -- Plays are first summed per 15 minutes (every zone's offset from UTC is a
        -- multiple of that), then only those sums are put into local days and hours:
        -- a third of the cost of converting every play.
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
            -- What no play is counted in any more goes (only the listeners of these changes).
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

CREATE TRIGGER plays_rollup_insert AFTER INSERT ON plays
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup();
CREATE TRIGGER plays_rollup_update AFTER UPDATE ON plays
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup();
CREATE TRIGGER plays_rollup_delete AFTER DELETE ON plays
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup();
CREATE TRIGGER plays_rollup_truncate AFTER TRUNCATE ON plays
    FOR EACH STATEMENT EXECUTE FUNCTION plays_rollup();

-- Set a listener's time zone and recount their days and hours in it, in one transaction,
-- holding the listener's zone lock (plays written meanwhile wait, then count in the new
-- zone). An unknown zone name raises (SQLSTATE 22023) and changes nothing.
CREATE FUNCTION set_listener_zone(listener TEXT, zone TEXT) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    hours BIGINT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = zone) THEN
        RAISE EXCEPTION 'unknown time zone: %', zone USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('plays-zone:' || listener, 0));
    INSERT INTO listener_zones (spotify_id, time_zone) VALUES (listener, zone)
        ON CONFLICT (spotify_id) DO UPDATE SET time_zone = excluded.time_zone;
    DELETE FROM plays_by_hour WHERE spotify_id = listener;
    INSERT INTO plays_by_hour (spotify_id, day, hour, dow, ms, plays)
    SELECT listener, day, hour, dow, sum(ms), sum(n)
      FROM (SELECT ms, n,
                   (at AT TIME ZONE zone)::date AS day,
                   extract(hour FROM at AT TIME ZONE zone)::smallint AS hour,
                   extract(isodow FROM at AT TIME ZONE zone)::smallint AS dow
              FROM (SELECT date_bin('15 minutes', played_at, timestamptz '2000-01-01 00:00Z') AS at,
                           sum(ms_played) AS ms, count(*) AS n
                      FROM plays WHERE spotify_id = listener GROUP BY 1) q) p
     GROUP BY day, hour, dow;
    GET DIAGNOSTICS hours = ROW_COUNT;
    RETURN hours;
END
$fn$;

-- The plays already stored, counted once.
INSERT INTO plays_by_hour (spotify_id, day, hour, dow, ms, plays)
SELECT spotify_id, (played_at AT TIME ZONE 'UTC')::date,
       extract(hour FROM played_at AT TIME ZONE 'UTC')::smallint,
       extract(isodow FROM played_at AT TIME ZONE 'UTC')::smallint,
       sum(ms_played), count(*)
  FROM plays GROUP BY 1, 2, 3, 4;
INSERT INTO plays_by_track (spotify_id, track_key, ms, plays)
SELECT spotify_id, track_key, sum(ms_played), count(*) FROM plays GROUP BY 1, 2;
INSERT INTO plays_by_artist (spotify_id, artist_name, ms, plays)
SELECT spotify_id, artist_name, sum(ms_played), count(*) FROM plays GROUP BY 1, 2;
INSERT INTO plays_by_listener (spotify_id, ms, plays)
SELECT spotify_id, sum(ms_played), count(*) FROM plays GROUP BY 1;
