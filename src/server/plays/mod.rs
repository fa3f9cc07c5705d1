//! Plays: every track a listener played, on the analytics node (`plays`), from Spotify's
//! recently-played (polled, [`ingest`]) and, later, from the listener's privacy export.
//!
//! One row per play. The same play seen twice is stored once: the primary key (listener,
//! time, track) catches a repeated poll or import, and a play of the same track by the
//! same listener within [`OVERLAP`] of one from the *other* source is taken to be that play
//! (an export and recently-played stamp the same play seconds apart). Within one source
//! the times are exact, so two real plays of one track a minute apart both count.

pub mod export;
pub mod import;
pub mod ingest;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// Plays of the same track by the same listener this close, from different sources, are
/// the same play.
pub const OVERLAP_SECS: i32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `/v1/me/player/recently-played`, polled.
    Recent,
    /// The extended streaming history (`Streaming_History_Audio_*.json`).
    Extended,
    /// The account data's `StreamingHistory_music_*.json` (names only, minute precision).
    Account,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Recent => "recent",
            Source::Extended => "extended",
            Source::Account => "account",
        }
    }
}

/// One play, as stored on the analytics node (the listener is passed beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Play {
    /// When the play ended.
    pub played_at: DateTime<Utc>,
    /// The Spotify track id, when the source has one.
    pub track_id: Option<String>,
    pub track_name: String,
    pub artist_name: String,
    pub artist_id: Option<String>,
    pub album_name: Option<String>,
    pub ms_played: i32,
    pub source: Source,
}

/// Store `plays` of one listener on the analytics node in one statement; returns how many
/// were new. A play already there (or the other source's record of it) is skipped.
pub async fn store(
    analytics: &PgPool,
    spotify_id: &str,
    plays: &[Play],
) -> Result<u64, sqlx::Error> {
    Ok(store_new(analytics, spotify_id, plays).await?.len() as u64)
}

/// A play [`store_new`] stored: when (UTC), the artist and the track.
pub type Stored = (DateTime<Utc>, String, String);

/// [`store`], returning the plays that were new.
pub async fn store_new(
    analytics: &PgPool,
    spotify_id: &str,
    plays: &[Play],
) -> Result<Vec<Stored>, sqlx::Error> {
    if plays.is_empty() {
        return Ok(Vec::new());
    }
    let columns = Columns::of(plays);
    let done = sqlx::query_as(STORE_SQL)
        .bind(spotify_id)
        .bind(&columns.at)
        .bind(&columns.track_id)
        .bind(&columns.track_name)
        .bind(&columns.artist_name)
        .bind(&columns.artist_id)
        .bind(&columns.album_name)
        .bind(&columns.ms_played)
        .bind(&columns.source)
        .bind(OVERLAP_SECS)
        .fetch_all(analytics)
        .await?;
    Ok(done)
}

/// Why [`store_routed`] did not store.
#[derive(Debug, thiserror::Error)]
pub enum RoutedError {
    #[error(transparent)]
    Shard(#[from] crate::server::shards::ShardError),
    #[error("analytics node: {0}")]
    Node(#[from] sqlx::Error),
}

impl RoutedError {
    /// A connection failed (to main or the node), not the statement: another try, on
    /// another connection, may succeed.
    pub fn is_disconnect(&self) -> bool {
        use crate::server::shards::ShardError;
        match self {
            RoutedError::Node(e) | RoutedError::Shard(ShardError::Main(e)) => {
                crate::server::store::pg::is_disconnect(e)
            }
            RoutedError::Shard(_) => false,
        }
    }
}

/// [`store`] on the node holding `spotify_id`'s partition, held against a move meanwhile.
pub async fn store_routed(
    stores: &crate::server::store::Stores,
    spotify_id: &str,
    plays: &[Play],
) -> Result<u64, RoutedError> {
    if plays.is_empty() {
        return Ok(0);
    }
    // Trending's markers of the days written, read before the write (see server::trending).
    let seen = crate::server::trending::seen(stores, plays).await;
    let shard = stores.analytics.shard(&stores.main, spotify_id).await?;
    let stored = store_new(&shard.pool, spotify_id, plays).await?;
    shard.release().await;
    crate::server::trending::add(stores, &seen, &crate::server::trending::counts(&stored)).await;
    Ok(stored.len() as u64)
}

/// Plays as columns, for one `UNNEST` insert.
pub(crate) struct Columns<'a> {
    pub at: Vec<DateTime<Utc>>,
    pub track_id: Vec<Option<&'a str>>,
    pub track_name: Vec<&'a str>,
    pub artist_name: Vec<&'a str>,
    pub artist_id: Vec<Option<&'a str>>,
    pub album_name: Vec<Option<&'a str>>,
    pub ms_played: Vec<i32>,
    pub source: Vec<&'static str>,
}

impl<'a> Columns<'a> {
    pub fn of(plays: &'a [Play]) -> Self {
        let n = plays.len();
        let mut c = Columns {
            at: Vec::with_capacity(n),
            track_id: Vec::with_capacity(n),
            track_name: Vec::with_capacity(n),
            artist_name: Vec::with_capacity(n),
            artist_id: Vec::with_capacity(n),
            album_name: Vec::with_capacity(n),
            ms_played: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
        };
        for p in plays {
            c.at.push(p.played_at);
            c.track_id.push(p.track_id.as_deref());
            c.track_name.push(p.track_name.as_str());
            c.artist_name.push(p.artist_name.as_str());
            c.artist_id.push(p.artist_id.as_deref());
            c.album_name.push(p.album_name.as_deref());
            c.ms_played.push(p.ms_played);
            c.source.push(p.source.as_str());
        }
        c
    }
}

/// A play without a track id is keyed by its names (lower-cased), so the same song from
/// the same kind of export is one key.
const STORE_SQL: &str = r"
    WITH n AS (
        SELECT $1::text AS spotify_id, x.played_at,
               COALESCE(x.track_id,
                        'name:' || md5(lower(x.artist_name) || E'\n' || lower(x.track_name)))
                 AS track_key,
               x.track_id, x.track_name, x.artist_name, x.artist_id, x.album_name,
               x.ms_played, x.source
          FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                      $7::text[], $8::int[], $9::text[])
               AS x(played_at, track_id, track_name, artist_name, artist_id, album_name,
                    ms_played, source)
    )
    INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name, artist_name,
                       artist_id, album_name, ms_played, source)
    SELECT * FROM n
     WHERE NOT EXISTS (
           SELECT 1 FROM plays p
            WHERE p.spotify_id = n.spotify_id
              AND p.played_at BETWEEN n.played_at - make_interval(secs => $10)
                                  AND n.played_at + make_interval(secs => $10)
              AND p.track_key = n.track_key
              AND p.source <> n.source)
    ON CONFLICT DO NOTHING
    RETURNING played_at, artist_name, track_name";

/// How far each rollup of `plays` on the analytics node (kept by trigger:
/// migrations/analytics/20261129000004_rollups.sql) is from the same aggregate of `plays`
/// computed directly: per rollup, the rows in one and not the other, both ways (0 when
/// they agree). Reads every play: for tests and the soak, not for a page.
pub async fn rollup_drift(analytics: &PgPool) -> Result<Vec<(&'static str, i64)>, sqlx::Error> {
    const CHECKS: [(&str, &str, &str); 4] = [
        (
            "plays_by_hour",
            "SELECT spotify_id, day, hour, dow, ms, plays FROM plays_by_hour",
            "SELECT p.spotify_id, (p.played_at AT TIME ZONE COALESCE(z.time_zone, 'UTC'))::date,
                    extract(hour FROM p.played_at AT TIME ZONE COALESCE(z.time_zone, 'UTC'))::smallint,
                    extract(isodow FROM p.played_at AT TIME ZONE COALESCE(z.time_zone, 'UTC'))::smallint,
                    sum(p.ms_played)::bigint, count(*)
               FROM plays p LEFT JOIN listener_zones z USING (spotify_id) GROUP BY 1, 2, 3, 4",
        ),
        (
            "plays_by_track",
            "SELECT spotify_id, track_key, ms, plays FROM plays_by_track",
            "SELECT spotify_id, track_key, sum(ms_played)::bigint, count(*) FROM plays GROUP BY 1, 2",
        ),
        (
            "plays_by_artist",
            "SELECT spotify_id, artist_name, ms, plays FROM plays_by_artist",
            "SELECT spotify_id, artist_name, sum(ms_played)::bigint, count(*) FROM plays GROUP BY 1, 2",
        ),
        (
            "plays_by_listener",
            "SELECT spotify_id, ms, plays FROM plays_by_listener",
            "SELECT spotify_id, sum(ms_played)::bigint, count(*) FROM plays GROUP BY 1",
        ),
    ];
    let mut out = Vec::with_capacity(CHECKS.len());
    for (name, rollup, direct) in CHECKS {
        let drift: i64 = sqlx::query_scalar(&format!(
            "SELECT (SELECT count(*) FROM (({rollup}) EXCEPT ({direct})) a)
                  + (SELECT count(*) FROM (({direct}) EXCEPT ({rollup})) b)"
        ))
        .fetch_one(analytics)
        .await?;
        out.push((name, drift));
    }
    Ok(out)
}
