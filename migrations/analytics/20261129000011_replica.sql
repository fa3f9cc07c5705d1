-- The read replica: the plays, published (each leaf under its own name, so a replica
-- database per node mirrors that node's leaves, a leaf's TRUNCATE included), and a
-- heartbeat row the app renews every few seconds, whose age on the replica is its lag.
-- The rollups are not: what the replica serves scans plays (the rollups are small reads
-- main's foreign tables answer well).
CREATE TABLE replica_heartbeat (
    node TEXT PRIMARY KEY,
    at   TIMESTAMPTZ NOT NULL
);
CREATE PUBLICATION personalify_replica FOR TABLE plays, replica_heartbeat;
