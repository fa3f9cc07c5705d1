-- A token refresh is single-flight per user through a lease on the row (taken and released
-- by short statements), not a row lock held across the call to Spotify: no pooled
-- connection waits on Spotify, and a refresher that dies frees the row when the lease ends.
ALTER TABLE spotify_tokens ADD COLUMN refreshing_until TIMESTAMPTZ;
