-- The hour a play ended in (UTC), stored with the play. A panel groups by it, and a GROUP
-- BY on a plain column runs on this node when main queries through postgres_fdw; the same
-- expression written in main's query would not be pushed down (postgres_fdw ships no
-- function whose text argument, 'UTC' or 'hour', is a constant rather than a remote
-- column: its collation is main's), and every play would cross the network. Days,
-- weekdays and hours in any time zone are then summed on main from these buckets: at
-- most 24 a day.
ALTER TABLE plays
    ADD COLUMN played_hour TIMESTAMPTZ
    GENERATED ALWAYS AS (timezone('UTC', date_trunc('hour', timezone('UTC', played_at)))) STORED;
