-- A partition being moved (personalify shards move): set when the move starts, cleared
-- when it ends. While any is, and until the read replica has caught up with the last
-- move (moved_at), instance-wide reads go to the nodes, not the replica (which holds a
-- moving partition on both nodes' databases for a moment).
ALTER TABLE shard_placements ADD COLUMN moving_since TIMESTAMPTZ;
