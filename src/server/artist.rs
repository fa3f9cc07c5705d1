//! The artist page's data ("content detail aggregation" in the seed design): metadata and
//! ranks from PostgreSQL, the rank history from MongoDB, a view counter from Redis, and
//! how many people on this server share the artist. Only PostgreSQL is required: MongoDB
//! or Redis being down leaves its panel empty, never the page.

use crate::domain::artist::{
    is_plausible_id, ArtistHistory, ArtistPage, ArtistTrack, Listeners, RangeRank,
};
use crate::domain::history::RankSeries;
use crate::domain::TimeRange;
use crate::server::state::AppState;
use crate::server::store::mongo::Mongo;
use std::collections::{BTreeSet, HashMap};

/// Syncs per range the history panel reads.
pub const HISTORY_SYNCS: i64 = 10;

/// The artist page for `spotify_id`, or `Ok(None)` when the artist is not in that
/// person's top artists or top tracks (whether or not it exists: the page never says
/// what other people listen to).
pub async fn load(
    state: &AppState,
    spotify_id: &str,
    artist_id: &str,
) -> Result<Option<ArtistPage>, sqlx::Error> {
    if !is_plausible_id(artist_id) {
        return Ok(None);
    }
    let pool = &state.stores.main;
    let (ranks, tracks) = tokio::try_join!(
        ranks(pool, spotify_id, artist_id),
        tracks(pool, spotify_id, artist_id)
    )?;
    if ranks.iter().all(|r| r.rank.is_none()) && tracks.is_empty() {
        return Ok(None);
    }
    let (meta, listeners, history, views) = tokio::join!(
        metadata(pool, artist_id),
        listeners(pool, artist_id),
        history(&state.stores.mongo, spotify_id, artist_id),
        state.stores.cache.count_artist_view(artist_id),
    );
    let Some(meta) = meta? else {
        // In a list yet in no catalogue table: nothing to show.
        return Ok(None);
    };
    Ok(Some(ArtistPage {
        id: artist_id.to_string(),
        name: meta.name,
        image_url: meta.image_url,
        genres: meta.genres,
        popularity: meta.popularity,
        followers: meta.followers,
        ranks,
        tracks,
        history: history
            .map_err(|err| tracing::warn!(error = %err, "artist history unavailable"))
            .ok(),
        views: views
            .map_err(|err| tracing::warn!(error = %err, "artist view counter unavailable"))
            .ok(),
        listeners: listeners?,
    }))
}

struct Metadata {
    name: String,
    image_url: Option<String>,
    genres: Option<Vec<String>>,
    popularity: Option<u32>,
    followers: Option<u64>,
}

/// From `artists`, or only the name from a track's credits when the artist was never in a
/// top-artists list.
async fn metadata(pool: &sqlx::PgPool, artist_id: &str) -> Result<Option<Metadata>, sqlx::Error> {
    type Row = (
        String,
        Option<String>,
        bool,
        Vec<String>,
        Option<i32>,
        Option<i64>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT a.name, a.image_url, a.genres_known,
                COALESCE(array_agg(g.genre ORDER BY g.genre) FILTER (WHERE g.genre IS NOT NULL), '{}'),
                a.popularity, a.followers
           FROM artists a LEFT JOIN artist_genres g ON g.artist_id = a.id
          WHERE a.id = $1
          GROUP BY a.id",
    )
    .bind(artist_id)
    .fetch_optional(pool)
    .await?;
    if let Some((name, image_url, genres_known, genres, popularity, followers)) = row {
        return Ok(Some(Metadata {
            name,
            image_url,
            genres: genres_known.then_some(genres),
            popularity: popularity.and_then(|p| u32::try_from(p).ok()),
            followers: followers.and_then(|f| u64::try_from(f).ok()),
        }));
    }
    let credited: Option<(String,)> =
        sqlx::query_as("SELECT artist_name FROM track_artists WHERE artist_id = $1 LIMIT 1")
            .bind(artist_id)
            .fetch_optional(pool)
            .await?;
    Ok(credited.map(|(name,)| Metadata {
        name,
        image_url: None,
        genres: None,
        popularity: None,
        followers: None,
    }))
}

async fn ranks(
    pool: &sqlx::PgPool,
    spotify_id: &str,
    artist_id: &str,
) -> Result<Vec<RangeRank>, sqlx::Error> {
    let rows: Vec<(String, i16)> = sqlx::query_as(
        "SELECT time_range, rank FROM user_artists WHERE spotify_id = $1 AND artist_id = $2",
    )
    .bind(spotify_id)
    .bind(artist_id)
    .fetch_all(pool)
    .await?;
    let found: HashMap<String, u16> = rows
        .into_iter()
        .filter_map(|(range, rank)| Some((range, u16::try_from(rank).ok()?)))
        .collect();
    Ok(TimeRange::ALL
        .into_iter()
        .map(|range| RangeRank {
            range,
            rank: found.get(range.as_str()).copied(),
        })
        .collect())
}

async fn tracks(
    pool: &sqlx::PgPool,
    spotify_id: &str,
    artist_id: &str,
) -> Result<Vec<ArtistTrack>, sqlx::Error> {
    type Row = (String, i16, String, String, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT ut.time_range, ut.rank, t.id, t.name, t.album_name, t.album_image_url
           FROM user_tracks ut JOIN tracks t ON t.id = ut.track_id
          WHERE ut.spotify_id = $1
            AND EXISTS (SELECT 1 FROM track_artists ta
                         WHERE ta.track_id = ut.track_id AND ta.artist_id = $2)
          ORDER BY ut.rank, ut.time_range",
    )
    .bind(spotify_id)
    .bind(artist_id)
    .fetch_all(pool)
    .await?;
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
    Ok(tracks)
}

async fn listeners(pool: &sqlx::PgPool, artist_id: &str) -> Result<Listeners, sqlx::Error> {
    let (with_artist, total): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(DISTINCT spotify_id) FROM user_artists WHERE artist_id = $1),
                (SELECT count(*) FROM users)",
    )
    .bind(artist_id)
    .fetch_one(pool)
    .await?;
    Ok(Listeners { with_artist, total })
}

/// The artist's rank in each range over the latest [`HISTORY_SYNCS`] syncs.
async fn history(
    mongo: &Mongo,
    spotify_id: &str,
    artist_id: &str,
) -> Result<ArtistHistory, mongodb::error::Error> {
    let (short, medium, long) = tokio::try_join!(
        mongo.history(spotify_id, TimeRange::ShortTerm, HISTORY_SYNCS),
        mongo.history(spotify_id, TimeRange::MediumTerm, HISTORY_SYNCS),
        mongo.history(spotify_id, TimeRange::LongTerm, HISTORY_SYNCS),
    )?;
    let per_range = [
        (TimeRange::ShortTerm, short),
        (TimeRange::MediumTerm, medium),
        (TimeRange::LongTerm, long),
    ];
    // One column per sync time (the three ranges of a sync share it), oldest first.
    let times: BTreeSet<String> = per_range
        .iter()
        .flat_map(|(_, snapshots)| snapshots.iter().map(|(_, p)| p.synced_at.clone()))
        .collect();
    let synced_at: Vec<String> = times
        .into_iter()
        .rev()
        .take(HISTORY_SYNCS as usize)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let ranges: Vec<(TimeRange, Vec<Option<u16>>)> = per_range
        .iter()
        .map(|(range, snapshots)| {
            let by_time: HashMap<&str, Option<u16>> = snapshots
                .iter()
                .map(|(_, p)| {
                    let rank = p.artists.iter().find(|a| a.id == artist_id).map(|a| a.rank);
                    (p.synced_at.as_str(), rank)
                })
                .collect();
            let points = synced_at
                .iter()
                .map(|at| by_time.get(at.as_str()).copied().flatten())
                .collect();
            (*range, points)
        })
        .collect();
    let series: Vec<RankSeries> = ranges
        .iter()
        .filter(|(_, points)| points.iter().any(Option::is_some))
        .map(|(range, points)| RankSeries {
            id: range.as_str().into(),
            name: range.label().into(),
            points: points.clone(),
        })
        .collect();
    let chart = crate::server::charts::rank_chart("this artist's", &synced_at, &series);
    Ok(ArtistHistory {
        synced_at,
        ranges,
        chart,
    })
}
