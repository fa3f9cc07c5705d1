-- Where each hash partition of the plays (and of the tables keyed by listener with them)
-- lives: on analytics node `node` (`analytics`, `analytics-2`). Filled by the app's
-- postgres_fdw set-up on its first run, changed only by `personalify shards move`. main's
-- partitioned tables in schema `analytics` follow it: partition `part` is a foreign table
-- on that node's server.
--
-- A writer to a listener's plays holds this row FOR SHARE while it writes to the node (so
-- a move, which takes it FOR UPDATE before its last copy and the switch, never misses a
-- write nor lets one land on the node it left).
CREATE TABLE shard_placements (
    part     SMALLINT PRIMARY KEY CHECK (part BETWEEN 0 AND 7),
    node     TEXT NOT NULL CHECK (node IN ('analytics', 'analytics-2')),
    moved_at TIMESTAMPTZ
);

-- A listener's partition, computed by PostgreSQL's own hash partitioning (the one main's
-- and the nodes' tables use): satisfies_hash_partition('shard_key'::regclass, 8, part, id).
-- Never holds a row; it exists for its partition key.
CREATE TABLE shard_key (spotify_id TEXT) PARTITION BY HASH (spotify_id);
