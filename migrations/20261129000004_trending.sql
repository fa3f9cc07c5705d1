-- Trending days (UTC) whose Redis sets may be short of plays: a write that could not be
-- added to them (Redis down, or the day being counted meanwhile). The next reader counts
-- them again from the plays (server::trending).
CREATE TABLE trending_dirty (
    day DATE PRIMARY KEY,
    at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
