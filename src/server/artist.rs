//! The artist page's data ("content detail aggregation" in the seed design): metadata and
//! ranks from PostgreSQL, the rank history from MongoDB, a view counter from Redis, and
//! how many people on this server share the artist. Only PostgreSQL is required: MongoDB
//! or Redis being down leaves its panel empty, never the page.

use crate::domain::artist::{
    is_plausible_id, ArtistHistory, ArtistPage, ArtistTrack, Listeners, RangeRank,
};
use crate::domain::TimeRange;
use crate::server::state::AppState;
use crate::server::store::Stores;
use crate::server::sync::history::HistoryError;
use crate::server::sync::snapshot_id;
use mongodb::bson::doc;
use std::collections::{BTreeSet, HashMap};

/// Syncs per range the history panel reads.
pub const HISTORY_SYNCS: i64 = 10;

/// The artist page for `spotify_id`, or `Ok(None)` when the artist is not in that
/// person's top artists or top tracks (whether or not it exists: the page never says
/// what other people listen to). One PostgreSQL round trip ([`Record::read`]), then the
/// Redis counter, the cached history and the plays on the analytics node at once (each may
/// fail alone: its panel says so).
pub async fn load(
    state: &AppState,
    user_id: i64,
    spotify_id: &str,
    artist_id: &str,
) -> Result<Option<ArtistPage>, sqlx::Error> {
    if !is_plausible_id(artist_id) {
        return Ok(None);
    }
    let record = Record::read(&state.stores.main, user_id, spotify_id, artist_id).await?;
    let ranks = record.ranks();
    let tracks = record.tracks();
    if ranks.iter().all(|r| r.rank.is_none()) && tracks.is_empty() {
        return Ok(None);
    }
    let Some(name) = record.name.clone().or(record.credited_name.clone()) else {
        // In a list yet in no catalogue table: nothing to show.
        return Ok(None);
    };
    let (history, views, plays) = tokio::join!(
        history(
            &state.stores,
            state.config.cache_ttl,
            &record.recent_syncs,
            spotify_id,
            artist_id
        ),
        state.stores.cache.count_artist_view(artist_id),
        crate::server::listening::artist_plays(&state.stores, spotify_id, &name),
    );
    // Known to `artists` (a top-artists list), or only by name from a track's credits.
    let in_catalogue = record.name.is_some();
    Ok(Some(ArtistPage {
        id: artist_id.to_string(),
        name,
        image_url: record.image_url,
        genres: (in_catalogue && record.genres_known).then_some(record.genres),
        popularity: record.popularity.and_then(|p| u32::try_from(p).ok()),
        followers: record.followers.and_then(|f| u64::try_from(f).ok()),
        ranks,
        tracks,
        history: history
            .map_err(|err| tracing::warn!(error = %err, "artist history unavailable"))
            .ok(),
        views: views
            .map_err(|err| tracing::warn!(error = %err, "artist view counter unavailable"))
            .ok(),
        listeners: Listeners {
            with_artist: record.listeners,
            total: record.people,
        },
        plays: plays
            .map_err(|err| tracing::warn!(error = %err, "artist plays unavailable"))
            .ok(),
    }))
}

/// Everything the artist page needs from PostgreSQL, in one row.
#[derive(sqlx::FromRow)]
struct Record {
    name: Option<String>,
    image_url: Option<String>,
    genres_known: bool,
    genres: Vec<String>,
    popularity: Option<i32>,
    followers: Option<i64>,
    /// The name in a track's credits, for an artist who was never in a top-artists list.
    credited_name: Option<String>,
    /// `[[time_range, rank], ...]` in the person's top artists.
    ranks: String,
    /// `[[time_range, rank, id, name, album, image_url], ...]`: the person's top tracks
    /// that credit the artist, best rank first.
    tracks: String,
    listeners: i64,
    people: i64,
    /// The person's latest successful syncs, newest first (the history reads them).
    recent_syncs: Vec<i64>,
}

type TrackRow = (String, i16, String, String, Option<String>, Option<String>);

impl Record {
    async fn read(
        pool: &sqlx::PgPool,
        user_id: i64,
        spotify_id: &str,
        artist_id: &str,
    ) -> Result<Record, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.name, a.image_url, COALESCE(a.genres_known, false) AS genres_known,
                    COALESCE((SELECT array_agg(g.genre ORDER BY g.genre)
                                FROM artist_genres g WHERE g.artist_id = $2), '{}') AS genres,
                    a.popularity, a.followers,
                    (SELECT ta.artist_name FROM track_artists ta
                      WHERE ta.artist_id = $2 LIMIT 1) AS credited_name,
                    COALESCE((SELECT json_agg(json_build_array(ua.time_range, ua.rank))
                                FROM user_artists ua
                               WHERE ua.spotify_id = $1 AND ua.artist_id = $2), '[]')::text AS ranks,
                    COALESCE((SELECT json_agg(json_build_array(ut.time_range, ut.rank, t.id, t.name,
                                                               t.album_name, t.album_image_url)
                                              ORDER BY ut.rank, ut.time_range)
                                FROM user_tracks ut JOIN tracks t ON t.id = ut.track_id
                               WHERE ut.spotify_id = $1
                                 AND ut.track_id IN (SELECT ta.track_id FROM track_artists ta
                                                      WHERE ta.artist_id = $2)), '[]')::text AS tracks,
                    (SELECT count(DISTINCT ua.spotify_id) FROM user_artists ua
                      WHERE ua.artist_id = $2) AS listeners,
                    (SELECT count(*) FROM users) AS people,
                    ARRAY(SELECT r.id FROM sync_runs r
                           WHERE r.user_id = $3 AND r.status = 'succeeded'
                           ORDER BY r.finished_at DESC, r.id DESC LIMIT $4) AS recent_syncs
               FROM (SELECT 1) AS one LEFT JOIN artists a ON a.id = $2",
        )
        .bind(spotify_id)
        .bind(artist_id)
        .bind(user_id)
        .bind(HISTORY_SYNCS)
        .fetch_one(pool)
        .await
    }

    /// The artist's rank in each range (`None`: not in that list).
    fn ranks(&self) -> Vec<RangeRank> {
        let found: Vec<(String, i16)> = serde_json::from_str(&self.ranks).unwrap_or_default();
        TimeRange::ALL
            .into_iter()
            .map(|range| RangeRank {
                range,
                rank: found
                    .iter()
                    .find(|(r, _)| r == range.as_str())
                    .and_then(|(_, rank)| u16::try_from(*rank).ok()),
            })
            .collect()
    }

    /// The person's top tracks by the artist, each once with its ranks (best first).
    fn tracks(&self) -> Vec<ArtistTrack> {
        let rows: Vec<TrackRow> = serde_json::from_str(&self.tracks).unwrap_or_default();
        let mut tracks: Vec<ArtistTrack> = Vec::new();
        for (range, rank, id, name, album, image_url) in rows {
            let (Ok(range), Ok(rank)) = (range.parse::<TimeRange>(), u16::try_from(rank)) else {
                continue;
            };
            match tracks.iter_mut().find(|t| t.id == id) {
                Some(track) => track.ranks.push((range, rank)),
                None => tracks.push(ArtistTrack {
                    id,
                    name,
                    album,
                    image_url,
                    ranks: vec![(range, rank)],
                }),
            }
        }
        tracks
    }
}

/// One history document's rank for the artist: the `$elemMatch` projection returns the
/// matching list entry only (or no `artists` at all when the artist was not in that list).
#[derive(serde::Deserialize)]
struct RankAt {
    sync_id: i64,
    synced_at: String,
    time_range: TimeRange,
    #[serde(default)]
    artists: Vec<RankOnly>,
}

#[derive(serde::Deserialize)]
struct RankOnly {
    rank: u16,
}

/// The artist's rank in each range over the person's latest syncs (`syncs`, newest first,
/// [`HISTORY_SYNCS`] of them): those syncs' snapshots by `_id`, projected to the one entry
/// that matters, cached per (person, artist, newest sync) once MongoDB holds the newest.
pub async fn history(
    stores: &Stores,
    cache_ttl: std::time::Duration,
    syncs: &[i64],
    spotify_id: &str,
    artist_id: &str,
) -> Result<ArtistHistory, HistoryError> {
    let Some(&newest) = syncs.first() else {
        return Ok(ArtistHistory {
            sync_id: None,
            synced_at: Vec::new(),
            ranges: TimeRange::ALL
                .into_iter()
                .map(|r| (r, Vec::new()))
                .collect(),
        });
    };
    let key = stores
        .cache
        .key(&format!("artist:history:{spotify_id}:{artist_id}:{newest}"));
    match stores.cache.get_json::<ArtistHistory>(&key).await {
        Ok(Some(cached)) => return Ok(cached),
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "artist history cache unavailable"),
    }
    let ids: Vec<String> = syncs
        .iter()
        .flat_map(|&run| TimeRange::ALL.map(|range| snapshot_id(run, range)))
        .collect();
    let found: Vec<RankAt> = stores
        .mongo
        .snapshots_by_id(
            &ids,
            doc! {
                "sync_id": 1, "synced_at": 1, "time_range": 1,
                "artists": { "$elemMatch": { "id": artist_id } },
            },
        )
        .await?;
    // One column per sync time (the three ranges of a sync share it), oldest first.
    let times: BTreeSet<(&str, i64)> = found
        .iter()
        .map(|r| (r.synced_at.as_str(), r.sync_id))
        .collect();
    let synced_at: Vec<String> = times.iter().map(|(at, _)| at.to_string()).collect();
    let column: HashMap<i64, usize> = times
        .iter()
        .enumerate()
        .map(|(i, (_, sync_id))| (*sync_id, i))
        .collect();
    let ranges = TimeRange::ALL
        .into_iter()
        .map(|range| {
            let mut points = vec![None; synced_at.len()];
            for r in found.iter().filter(|r| r.time_range == range) {
                if let (Some(&i), Some(entry)) = (column.get(&r.sync_id), r.artists.first()) {
                    points[i] = Some(entry.rank);
                }
            }
            (range, points)
        })
        .collect();
    let history = ArtistHistory {
        sync_id: times.last().map(|(_, sync_id)| *sync_id),
        synced_at,
        ranges,
    };
    if history.sync_id == Some(newest) {
        match serde_json::to_string(&history) {
            Ok(json) => {
                if let Err(e) = stores.cache.set_json(&key, &json, cache_ttl).await {
                    tracing::debug!(error = %e, "artist history not cached");
                }
            }
            Err(e) => tracing::warn!(error = %e, "artist history cannot be cached"),
        }
    }
    Ok(history)
}
