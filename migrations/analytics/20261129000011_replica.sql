-- The read replica: every table keyed by listener, published (each leaf under its own
-- name, so a replica database per node mirrors that node's leaves), and a heartbeat row
-- the app renews every few seconds, whose age on the replica is its lag.
CREATE TABLE replica_heartbeat (
    node TEXT PRIMARY KEY,
    at   TIMESTAMPTZ NOT NULL
);
CREATE PUBLICATION personalify_replica FOR TABLE
    plays, plays_by_hour, plays_by_track, plays_by_artist, plays_by_listener, listener_zones,
    replica_heartbeat;
