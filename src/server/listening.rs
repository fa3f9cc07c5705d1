//! The Listening page's data: cross-node queries run on `main` over the foreign table
//! `analytics.plays`, each filtered by the listener and aggregated on the analytics node
//! (their `Remote SQL` carries the `WHERE` and the `GROUP BY`, checked by tests), and
//! joined on `main` with the local `artists`, `tracks` and top lists. [`QUERIES`] names
//! them for the Distributed query page.

use crate::domain::artist::ArtistPlays;
use crate::domain::listening::{
    day_number, months, streaks, ByMinutes, DayMinutes, ListeningView, Totals, TIME_ZONE,
};
use crate::domain::TimeRange;
use crate::server::store::Stores;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

/// A panel's query gets this long; the page then says the panel is unavailable.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Rows in the top lists by minutes.
pub const TOP: i64 = 10;

/// One cross-node query the app runs, for the Distributed query page.
#[derive(Debug, Clone, Copy)]
pub struct NamedQuery {
    pub name: &'static str,
    pub title: &'static str,
    /// What it shows, and where each part runs.
    pub about: &'static str,
    pub sql: &'static str,
}

pub const TOTALS: NamedQuery = NamedQuery {
    name: "totals",
    title: "Totals",
    about: "Counted on the analytics node: one row comes back.",
    sql: "SELECT count(*)::bigint, COALESCE(sum(ms_played), 0)::bigint,
                 count(DISTINCT track_key)::bigint, count(DISTINCT lower(artist_name))::bigint
            FROM analytics.plays
           WHERE spotify_id = $1",
};

pub const HOURS: NamedQuery = NamedQuery {
    name: "hours",
    title: "Minutes per hour (for days, streaks and the week grid)",
    about: "Grouped by the hour a play ended in (a column stored with each play) on the \
            analytics node: at most 24 rows a day come back; main sums them into days, \
            weekdays and hours.",
    sql: "SELECT played_hour, sum(ms_played)::bigint AS ms, count(*)::bigint AS plays
            FROM analytics.plays
           WHERE spotify_id = $1
           GROUP BY played_hour",
};

pub const TOP_ARTISTS: NamedQuery = NamedQuery {
    name: "top_artists",
    title: "Top artists by minutes, joined with local artists",
    about: "Filtered and grouped on the analytics node; the artist ids are looked up in main's \
            own artists and top lists (a join with a local table runs on main).",
    sql: "SELECT p.artist_name, p.ms, p.plays, ua.artist_id
            FROM (SELECT artist_name, max(artist_id) AS artist_id,
                         sum(ms_played)::bigint AS ms, count(*)::bigint AS plays
                    FROM analytics.plays
                   WHERE spotify_id = $1 AND played_at >= $2
                   GROUP BY artist_name) p
            LEFT JOIN LATERAL (
                 SELECT a.id AS artist_id FROM artists a
                   JOIN user_artists u ON u.artist_id = a.id AND u.spotify_id = $1
                  WHERE a.id = p.artist_id OR a.name = p.artist_name
                  ORDER BY a.id = p.artist_id DESC, u.rank
                  LIMIT 1) ua ON true
           ORDER BY p.ms DESC, p.artist_name
           LIMIT $3",
};

pub const TOP_TRACKS: NamedQuery = NamedQuery {
    name: "top_tracks",
    title: "Top tracks by minutes",
    about: "Filtered and grouped by track on the analytics node; the artist link comes from \
            main's own top lists.",
    sql: "SELECT p.track_name, p.artist_name, p.ms, p.plays, ua.artist_id
            FROM (SELECT track_key, max(track_name) AS track_name,
                         max(artist_name) AS artist_name, max(artist_id) AS artist_id,
                         sum(ms_played)::bigint AS ms, count(*)::bigint AS plays
                    FROM analytics.plays
                   WHERE spotify_id = $1 AND played_at >= $2
                   GROUP BY track_key) p
            LEFT JOIN LATERAL (
                 SELECT a.id AS artist_id FROM artists a
                   JOIN user_artists u ON u.artist_id = a.id AND u.spotify_id = $1
                  WHERE a.id = p.artist_id OR a.name = p.artist_name
                  ORDER BY a.id = p.artist_id DESC, u.rank
                  LIMIT 1) ua ON true
           ORDER BY p.ms DESC, p.track_name
           LIMIT $3",
};

/// The seed design's example: a remote table joined with the local `users`. Instance-wide,
/// so it says how many, never who.
pub const LISTENERS: NamedQuery = NamedQuery {
    name: "listeners",
    title: "Listeners on this instance (the seed's users ⋈ a remote table)",
    about: "Plays are counted per listener on the analytics node, then joined on main with its \
            users table: how many people here have plays, their plays, and yours.",
    sql: "SELECT count(*)::bigint AS listeners,
                 COALESCE(sum(p.plays), 0)::bigint AS plays,
                 COALESCE(sum(p.plays) FILTER (WHERE u.spotify_id = $1), 0)::bigint AS yours
            FROM users u
            JOIN (SELECT spotify_id, count(*)::bigint AS plays
                    FROM analytics.plays GROUP BY spotify_id) p
              ON p.spotify_id = u.spotify_id",
};

/// The artist page: the person's plays of one artist, by hour (summed into months on main).
pub const ARTIST_HOURS: NamedQuery = NamedQuery {
    name: "artist_hours",
    title: "Your plays of an artist",
    about: "Filtered by listener and artist name and grouped by hour on the analytics node.",
    sql: "SELECT played_hour, sum(ms_played)::bigint AS ms, count(*)::bigint AS plays
            FROM analytics.plays
           WHERE spotify_id = $1 AND artist_name = $2
           GROUP BY played_hour",
};

/// The artist page: people here who played the artist, a remote list joined with `users`.
pub const ARTIST_LISTENERS: NamedQuery = NamedQuery {
    name: "artist_listeners",
    title: "Listeners of an artist on this instance",
    about: "The listeners of the artist are found on the analytics node (an index on artist \
            and listener), then joined with main's users and counted.",
    sql: "SELECT count(*)::bigint
            FROM users u
            JOIN (SELECT spotify_id FROM analytics.plays
                   WHERE artist_name = $1 GROUP BY spotify_id) p
              ON p.spotify_id = u.spotify_id",
};

pub const QUERIES: [NamedQuery; 5] = [TOTALS, HOURS, TOP_ARTISTS, TOP_TRACKS, LISTENERS];

/// How far back a range looks in the plays: Spotify's own windows.
pub fn window(range: TimeRange) -> chrono::Duration {
    chrono::Duration::days(match range {
        TimeRange::ShortTerm => 28,
        TimeRange::MediumTerm => 182,
        TimeRange::LongTerm => 365,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ListeningError {
    #[error("the analytics node did not answer within {} s", DEADLINE.as_secs())]
    TimedOut,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

async fn bounded<T>(
    query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ListeningError> {
    match tokio::time::timeout(DEADLINE, query).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ListeningError::TimedOut),
    }
}

/// Everything the Listening page shows for `spotify_id` and `range`. The remote queries
/// run concurrently on `stores.remote` (each its own connection, so its own FDW
/// connection); Spotify's own lists come from `main`'s tables.
pub async fn load(
    stores: &Stores,
    spotify_id: &str,
    range: TimeRange,
) -> Result<ListeningView, ListeningError> {
    load_from(&stores.main, &stores.remote, spotify_id, range).await
}

/// [`load`] with the two pools given: `remote` for the queries over the foreign tables.
pub async fn load_from(
    main: &PgPool,
    remote: &PgPool,
    spotify_id: &str,
    range: TimeRange,
) -> Result<ListeningView, ListeningError> {
    let since = Utc::now() - window(range);
    let (totals, hours, artists, tracks, spotify) = tokio::try_join!(
        bounded(totals(remote, spotify_id)),
        bounded(hours(remote, spotify_id)),
        bounded(top_artists(remote, spotify_id, since)),
        bounded(top_tracks(remote, spotify_id, since)),
        bounded(spotify_top(main, spotify_id, range)),
    )?;
    let days = days_of(&hours);
    let today = Utc::now().date_naive();
    let numbers: Vec<i64> = days.iter().filter_map(|d| day_number(&d.day)).collect();
    let (current, longest) = streaks(&numbers, days_since_epoch(today));
    let year_ago = (today - chrono::Duration::days(365)).to_string();
    let totals = Totals {
        first_day: days.first().map(|d| d.day.clone()),
        last_day: days.last().map(|d| d.day.clone()),
        days_listened: u32::try_from(days.len()).unwrap_or(u32::MAX),
        current_streak: current,
        longest_streak: longest,
        ..totals
    };
    Ok(ListeningView {
        range,
        totals,
        week: week_of(&hours, since),
        days: days.into_iter().filter(|d| d.day > year_ago).collect(),
        top_artists: artists,
        top_tracks: tracks,
        spotify_artists: spotify.0,
        spotify_tracks: spotify.1,
    })
}

fn days_since_epoch(day: NaiveDate) -> i64 {
    day_number(&day.to_string()).unwrap_or(0)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn minutes(ms: i64) -> u32 {
    u32::try_from(ms / 60_000).unwrap_or(u32::MAX)
}

async fn totals(remote: &PgPool, spotify_id: &str) -> Result<Totals, sqlx::Error> {
    let (plays, ms, tracks, artists): (i64, i64, i64, i64) = sqlx::query_as(TOTALS.sql)
        .bind(spotify_id)
        .fetch_one(remote)
        .await?;
    Ok(Totals {
        plays: count(plays),
        minutes: count(ms / 60_000),
        tracks: count(tracks),
        artists: count(artists),
        ..Totals::default()
    })
}

/// Milliseconds and plays in one hour (UTC) of a listener's plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourBucket {
    pub at: DateTime<Utc>,
    pub ms: i64,
    pub plays: i64,
}

/// Every hour with plays.
pub async fn hours(remote: &PgPool, spotify_id: &str) -> Result<Vec<HourBucket>, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, i64, i64)> = sqlx::query_as(HOURS.sql)
        .bind(spotify_id)
        .fetch_all(remote)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(at, ms, plays)| HourBucket { at, ms, plays })
        .collect())
}

/// Days with plays (in [`TIME_ZONE`], which buckets of whole UTC hours can serve), oldest first.
pub fn days_of(hours: &[HourBucket]) -> Vec<DayMinutes> {
    debug_assert_eq!(TIME_ZONE, "UTC");
    let mut days: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
    for h in hours {
        let day = days.entry(h.at.date_naive()).or_default();
        day.0 += h.ms;
        day.1 += h.plays;
    }
    days.into_iter()
        .map(|(day, (ms, plays))| DayMinutes {
            day: day.to_string(),
            minutes: minutes(ms),
            plays: u32::try_from(plays).unwrap_or(u32::MAX),
        })
        .collect()
}

/// Minutes per weekday (Monday first) and hour ([`TIME_ZONE`]) since `since`.
pub fn week_of(hours: &[HourBucket], since: DateTime<Utc>) -> Vec<Vec<u32>> {
    let mut ms = vec![vec![0i64; 24]; 7];
    for h in hours.iter().filter(|h| h.at >= since) {
        let weekday = h.at.weekday().num_days_from_monday() as usize;
        ms[weekday][h.at.hour() as usize] += h.ms;
    }
    ms.into_iter()
        .map(|row| row.into_iter().map(minutes).collect())
        .collect()
}

/// Top artists by minutes since `since`, most first.
async fn top_artists(
    remote: &PgPool,
    spotify_id: &str,
    since: DateTime<Utc>,
) -> Result<Vec<ByMinutes>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, Option<String>)> = sqlx::query_as(TOP_ARTISTS.sql)
        .bind(spotify_id)
        .bind(since)
        .bind(TOP)
        .fetch_all(remote)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, ms, plays, artist_id)| by_minutes(name, None, ms, plays, artist_id))
        .collect())
}

/// Top tracks by minutes since `since`, most first.
async fn top_tracks(
    remote: &PgPool,
    spotify_id: &str,
    since: DateTime<Utc>,
) -> Result<Vec<ByMinutes>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64, Option<String>)> = sqlx::query_as(TOP_TRACKS.sql)
        .bind(spotify_id)
        .bind(since)
        .bind(TOP)
        .fetch_all(remote)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, artist, ms, plays, artist_id)| {
            by_minutes(name, Some(artist), ms, plays, artist_id)
        })
        .collect())
}

fn by_minutes(
    name: String,
    artist: Option<String>,
    ms: i64,
    plays: i64,
    artist_id: Option<String>,
) -> ByMinutes {
    ByMinutes {
        name,
        artist,
        minutes: minutes(ms),
        plays: u32::try_from(plays).unwrap_or(u32::MAX),
        artist_id,
    }
}

/// Spotify's own top 10 artists and tracks for `range` (local tables only).
async fn spotify_top(
    main: &PgPool,
    spotify_id: &str,
    range: TimeRange,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let artists: Vec<String> = sqlx::query_scalar(
        "SELECT a.name FROM user_artists u JOIN artists a ON a.id = u.artist_id
          WHERE u.spotify_id = $1 AND u.time_range = $2 ORDER BY u.rank LIMIT $3",
    )
    .bind(spotify_id)
    .bind(range.as_str())
    .bind(TOP)
    .fetch_all(main)
    .await?;
    let tracks: Vec<String> = sqlx::query_scalar(
        "SELECT t.name FROM user_tracks u JOIN tracks t ON t.id = u.track_id
          WHERE u.spotify_id = $1 AND u.time_range = $2 ORDER BY u.rank LIMIT $3",
    )
    .bind(spotify_id)
    .bind(range.as_str())
    .bind(TOP)
    .fetch_all(main)
    .await?;
    Ok((artists, tracks))
}

/// The artist page's plays panel for `spotify_id` and the artist called `artist_name`.
pub async fn artist_plays(
    remote: &PgPool,
    spotify_id: &str,
    artist_name: &str,
) -> Result<ArtistPlays, ListeningError> {
    let hours = async {
        sqlx::query_as::<_, (DateTime<Utc>, i64, i64)>(ARTIST_HOURS.sql)
            .bind(spotify_id)
            .bind(artist_name)
            .fetch_all(remote)
            .await
    };
    let listeners = async {
        sqlx::query_scalar::<_, i64>(ARTIST_LISTENERS.sql)
            .bind(artist_name)
            .fetch_one(remote)
            .await
    };
    let (hours, listeners) = tokio::try_join!(bounded(hours), bounded(listeners))?;
    let hours: Vec<HourBucket> = hours
        .into_iter()
        .map(|(at, ms, plays)| HourBucket { at, ms, plays })
        .collect();
    let days = days_of(&hours);
    let months = months(&days);
    let (ms, plays) = hours
        .iter()
        .fold((0i64, 0i64), |(ms, n), h| (ms + h.ms, n + h.plays));
    Ok(ArtistPlays {
        plays: u32::try_from(plays).unwrap_or(u32::MAX),
        minutes: minutes(ms),
        first_day: days.first().map(|d| d.day.clone()),
        months,
        listeners,
    })
}
