//! The Listening page's data: cross-node queries run on `main` over the foreign tables in
//! schema `analytics`, each filtered by the listener and aggregated on the analytics node
//! (their `Remote SQL` carries the `WHERE` and the `GROUP BY`, checked by tests), and
//! joined on `main` with the local `users`, `artists` and top lists. [`QUERIES`] names
//! them for the Distributed query page.
//!
//! The tables in `analytics` are partitioned by listener over the analytics nodes
//! ([`crate::server::shards`]). A query for one listener names them in its `WHERE`, so
//! it reads one partition on one node; and it groups by `spotify_id` too (one value, so
//! the same groups): with `enable_partitionwise_aggregate` on (main's connections set it),
//! a `GROUP BY` holding the partition key is what lets PostgreSQL 15 send the aggregate to
//! the node; without it the node sends every row and main groups them.
//!
//! Totals, days, the week grid and the listener counts read the rollups the analytics
//! node keeps as plays are written (`plays_by_hour`, `_by_track`, `_by_artist`,
//! `_by_listener`: migrations/analytics/20261129000004_rollups.sql), so their cost does
//! not grow with a listener's plays; the top lists, which need any window, aggregate
//! `plays` itself. Days and hours are in the listener's time zone ([`zone`]).

use crate::domain::artist::ArtistPlays;
use crate::domain::listening::{
    day_number, months, streaks, ByMinutes, DayMinutes, ListeningView, Totals,
};
use crate::domain::TimeRange;
use crate::server::store::Stores;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgArguments;
use sqlx::PgPool;
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
    pub params: Params,
}

/// What a [`NamedQuery`]'s `$n` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Params {
    /// None.
    None,
    /// `$1` the listener's Spotify id.
    Listener,
    /// `$1` the listener, `$2` the first local day of the range (a date).
    ListenerFromDay,
    /// `$1` the listener, `$2` the start of the range (a timestamp), `$3` how many rows.
    ListenerSinceTop,
    /// `$1` the listener, `$2` an artist's name, `$3` the listener's time zone.
    ListenerArtistZone,
    /// `$1` an artist's name.
    Artist,
}

/// The listener's time zone (NULL: never set, so UTC) and their today in it. The zone is
/// kept on the analytics node, where days and hours are counted in it
/// (`set_listener_zone`); the date is worked out on main.
pub const ZONE: NamedQuery = NamedQuery {
    name: "zone",
    title: "Your time zone",
    about: "Read from the analytics node, which counts your days and hours in it; today's \
            date in it is worked out on main.",
    sql: "SELECT z.time_zone, (now() AT TIME ZONE COALESCE(z.time_zone, 'UTC'))::date AS today
            FROM (VALUES (1)) one
            LEFT JOIN analytics.listener_zones z ON z.spotify_id = $1",
    params: Params::Listener,
};

pub const TOTALS: NamedQuery = NamedQuery {
    name: "totals",
    title: "Totals",
    about: "Read from the rollups the analytics node keeps as plays arrive (per listener, \
            per track, per artist): three small answers, however many plays there are.",
    sql: "SELECT COALESCE(l.plays, 0)::bigint AS plays, COALESCE(l.ms, 0)::bigint AS ms,
                 COALESCE((SELECT count(*) FROM analytics.plays_by_track
                            WHERE spotify_id = $1 GROUP BY spotify_id), 0)::bigint AS tracks,
                 COALESCE((SELECT count(DISTINCT lower(artist_name)) FROM analytics.plays_by_artist
                            WHERE spotify_id = $1 GROUP BY spotify_id), 0)::bigint AS artists
            FROM (VALUES (1)) one
            LEFT JOIN analytics.plays_by_listener l ON l.spotify_id = $1",
    params: Params::Listener,
};

pub const DAYS: NamedQuery = NamedQuery {
    name: "days",
    title: "Minutes per day (the calendar and the streaks)",
    about: "Summed per day on the analytics node from its rollup by listener, local day and \
            hour: one row per day with plays comes back.",
    sql: "SELECT day, sum(ms)::bigint AS ms, sum(plays)::bigint AS plays
            FROM analytics.plays_by_hour
           WHERE spotify_id = $1
           GROUP BY spotify_id, day",
    params: Params::Listener,
};

pub const WEEK: NamedQuery = NamedQuery {
    name: "week",
    title: "Minutes by weekday and hour",
    about: "Filtered by the range's first day and summed per weekday and hour on the \
            analytics node, from the same rollup: at most 168 rows come back.",
    sql: "SELECT dow, hour, sum(ms)::bigint AS ms
            FROM analytics.plays_by_hour
           WHERE spotify_id = $1 AND day >= $2
           GROUP BY spotify_id, dow, hour",
    params: Params::ListenerFromDay,
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
                   GROUP BY spotify_id, artist_name
                   ORDER BY ms DESC, artist_name
                   LIMIT $3) p
            LEFT JOIN LATERAL (
                 SELECT a.id AS artist_id FROM artists a
                   JOIN user_artists u ON u.artist_id = a.id AND u.spotify_id = $1
                  WHERE a.id = p.artist_id OR a.name = p.artist_name
                  ORDER BY a.id = p.artist_id DESC, u.rank
                  LIMIT 1) ua ON true
           ORDER BY p.ms DESC, p.artist_name",
    params: Params::ListenerSinceTop,
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
                   GROUP BY spotify_id, track_key
                   ORDER BY ms DESC, track_name
                   LIMIT $3) p
            LEFT JOIN LATERAL (
                 SELECT a.id AS artist_id FROM artists a
                   JOIN user_artists u ON u.artist_id = a.id AND u.spotify_id = $1
                  WHERE a.id = p.artist_id OR a.name = p.artist_name
                  ORDER BY a.id = p.artist_id DESC, u.rank
                  LIMIT 1) ua ON true
           ORDER BY p.ms DESC, p.track_name",
    params: Params::ListenerSinceTop,
};

/// The seed design's example: a remote table joined with the local `users`. Instance-wide,
/// so it says how many, never who.
pub const LISTENERS: NamedQuery = NamedQuery {
    name: "listeners",
    title: "Listeners on this instance (the seed's users ⋈ a remote table)",
    about: "The analytics node's rollup per listener (one row each) is joined on main with its \
            users table: how many people here have plays, their plays, and yours.",
    sql: "SELECT count(*)::bigint AS listeners,
                 COALESCE(sum(p.plays), 0)::bigint AS plays,
                 COALESCE(sum(p.plays) FILTER (WHERE u.spotify_id = $1), 0)::bigint AS yours
            FROM users u
            JOIN analytics.plays_by_listener p ON p.spotify_id = u.spotify_id",
    params: Params::Listener,
};

/// The Distributed query page's instance-wide example: every partition on both nodes at
/// once. Counts only: it says how many, never who.
pub const INSTANCE: NamedQuery = NamedQuery {
    name: "instance",
    title: "Plays on this instance (every partition, both nodes)",
    about: "Grouped by listener on each partition's node, all partitions scanned concurrently \
            (Async Foreign Scan), then summed on main: how many listeners have plays here, \
            their plays and minutes.",
    sql: "SELECT count(*)::bigint AS listeners, COALESCE(sum(n), 0)::bigint AS plays,
                 COALESCE(sum(ms) / 60000, 0)::bigint AS minutes
            FROM (SELECT spotify_id, count(*) AS n, sum(ms_played) AS ms
                    FROM analytics.plays
                   GROUP BY spotify_id) per_listener",
    params: Params::None,
};

/// The artist page: the person's plays of one artist per local day. Grouped by hour on the
/// analytics node (a plain column, so pushed down); main puts the hours into days in the
/// listener's zone (an expression with a constant zone is not pushed down).
pub const ARTIST_DAYS: NamedQuery = NamedQuery {
    name: "artist_days",
    title: "Your plays of an artist",
    about: "Filtered by listener and artist name and grouped by hour on the analytics node; \
            main sums the hours into days in your time zone.",
    sql: "SELECT (h.played_hour AT TIME ZONE $3)::date AS day,
                 sum(h.ms)::bigint AS ms, sum(h.plays)::bigint AS plays
            FROM (SELECT played_hour, sum(ms_played)::bigint AS ms, count(*)::bigint AS plays
                    FROM analytics.plays
                   WHERE spotify_id = $1 AND artist_name = $2
                   GROUP BY spotify_id, played_hour) h
           GROUP BY 1",
    params: Params::ListenerArtistZone,
};

/// The artist page: people here who played the artist, a remote list joined with `users`.
pub const ARTIST_LISTENERS: NamedQuery = NamedQuery {
    name: "artist_listeners",
    title: "Listeners of an artist on this instance",
    about: "The artist's listeners are read from the analytics node's rollup per listener and \
            artist (indexed by artist), then joined with main's users and counted.",
    sql: "SELECT count(*)::bigint
            FROM users u
            JOIN analytics.plays_by_artist p ON p.spotify_id = u.spotify_id
           WHERE p.artist_name = $1",
    params: Params::Artist,
};

/// The Listening page's queries, in the order the Distributed query page shows them.
pub const QUERIES: [NamedQuery; 7] = [ZONE, TOTALS, DAYS, WEEK, TOP_ARTISTS, TOP_TRACKS, LISTENERS];

/// Values for a query's parameters: see [`arguments`].
#[derive(Debug, Clone)]
pub struct Args<'a> {
    pub spotify_id: &'a str,
    /// The start of the range (the top lists).
    pub since: DateTime<Utc>,
    /// The range's first day in the listener's zone (the week grid).
    pub from_day: NaiveDate,
    pub artist: &'a str,
    pub time_zone: &'a str,
}

/// `query`'s parameters bound from `args`, and what each stands for (in words).
pub fn arguments(query: NamedQuery, args: &Args<'_>) -> (PgArguments, Vec<String>) {
    use sqlx::Arguments;
    let mut out = PgArguments::default();
    let mut said = Vec::new();
    // Binding plain values into a fresh argument list cannot fail.
    match query.params {
        Params::None => return (out, said),
        Params::Artist => {
            let _ = out.add(args.artist);
            said.push(format!("$1 = {:?} (an artist)", args.artist));
            return (out, said);
        }
        _ => {
            let _ = out.add(args.spotify_id);
            said.push("$1 = your Spotify id".to_string());
        }
    }
    match query.params {
        Params::None | Params::Listener | Params::Artist => {}
        Params::ListenerFromDay => {
            let _ = out.add(args.from_day);
            said.push(format!("$2 = {} (the range's first day)", args.from_day));
        }
        Params::ListenerSinceTop => {
            let _ = out.add(args.since);
            said.push(format!(
                "$2 = {} (the range's start)",
                args.since.format("%Y-%m-%d %H:%M UTC")
            ));
            let _ = out.add(TOP);
            said.push(format!("$3 = {TOP} (rows)"));
        }
        Params::ListenerArtistZone => {
            let _ = out.add(args.artist);
            said.push(format!("$2 = {:?} (an artist)", args.artist));
            let _ = out.add(args.time_zone);
            said.push(format!("$3 = {} (your time zone)", args.time_zone));
        }
    }
    (out, said)
}

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
    #[error("{0} right now; this part of the page is back as soon as it is")]
    Down(#[from] crate::server::store::breaker::Down),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl ListeningError {
    /// The listener's node held the read past its deadline, or main could not reach it
    /// (main itself answered: the error is the foreign server's, or its statement timeout).
    fn node_missed(&self) -> bool {
        match self {
            ListeningError::TimedOut => true,
            ListeningError::Database(sqlx::Error::Database(d)) => {
                matches!(
                    d.code().as_deref(),
                    Some("57014" | "08001" | "08006" | "HV00N")
                )
            }
            _ => false,
        }
    }
}

/// `read` of `spotify_id`'s plays, unless their node is marked down (then at once); a read
/// the node held past its deadline marks it down, so the pages after it do not wait too.
async fn on_their_node<T>(
    stores: &Stores,
    spotify_id: &str,
    read: impl std::future::Future<Output = Result<T, ListeningError>>,
) -> Result<T, ListeningError> {
    // Not placed yet, or main not answering: the read finds out for itself.
    let node = crate::server::shards::node_of(&stores.analytics, &stores.main, spotify_id)
        .await
        .ok();
    if let Some(node) = node {
        node.breaker.check()?;
    }
    let result = read.await;
    if let (Some(node), Err(e)) = (node, &result) {
        if e.node_missed() {
            node.breaker.trip();
        }
    }
    result
}

async fn bounded<T>(
    query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ListeningError> {
    match tokio::time::timeout(DEADLINE, query).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ListeningError::TimedOut),
    }
}

/// Everything the Listening page shows for `spotify_id` and `range`. The listener's zone
/// is read first (the week grid's first day depends on it); then the remote queries run
/// concurrently on `stores.remote` (each its own connection, so its own FDW connection);
/// Spotify's own lists come from `main`'s tables.
pub async fn load(
    stores: &Stores,
    spotify_id: &str,
    range: TimeRange,
) -> Result<ListeningView, ListeningError> {
    on_their_node(
        stores,
        spotify_id,
        load_from(&stores.main, &stores.remote, spotify_id, range),
    )
    .await
}

/// [`load`] with the two pools given: `remote` for the queries over the foreign tables.
pub async fn load_from(
    main: &PgPool,
    remote: &PgPool,
    spotify_id: &str,
    range: TimeRange,
) -> Result<ListeningView, ListeningError> {
    let zone = bounded(zone(remote, spotify_id)).await?;
    let since = Utc::now() - window(range);
    let (totals, days, week, artists, tracks, spotify) = tokio::try_join!(
        bounded(totals(remote, spotify_id)),
        bounded(days(remote, spotify_id)),
        bounded(week(remote, spotify_id, from_day(zone.today, range))),
        bounded(top_artists(remote, spotify_id, since)),
        bounded(top_tracks(remote, spotify_id, since)),
        bounded(spotify_top(main, spotify_id, range)),
    )?;
    let numbers: Vec<i64> = days.iter().filter_map(|d| day_number(&d.day)).collect();
    let (current, longest) = streaks(&numbers, days_since_epoch(zone.today));
    let days_from = calendar_from(zone.today).to_string();
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
        time_zone: zone.name,
        zone_set: zone.set,
        totals,
        week,
        days: days.into_iter().filter(|d| d.day >= days_from).collect(),
        days_from,
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

/// A listener's time zone, as the analytics node counts their days and hours in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// An IANA name, `UTC` until the listener (or their browser) sets one.
    pub name: String,
    /// Whether it was set (else the page offers the browser's).
    pub set: bool,
    /// Today's date in it.
    pub today: NaiveDate,
}

pub async fn zone(remote: &PgPool, spotify_id: &str) -> Result<Zone, sqlx::Error> {
    let (name, today): (Option<String>, NaiveDate) = sqlx::query_as(ZONE.sql)
        .bind(spotify_id)
        .fetch_one(remote)
        .await?;
    Ok(Zone {
        set: name.is_some(),
        name: name.unwrap_or_else(|| "UTC".into()),
        today,
    })
}

/// The calendar's first day for `today`: the first of the month a year back (365 days
/// including today), so the calendar starts with a whole month (a month cut short would
/// put its label on top of the next one's) and its table lists whole months.
pub fn calendar_from(today: NaiveDate) -> NaiveDate {
    use chrono::Datelike;
    let year_back = today - chrono::Duration::days(364);
    year_back.with_day(1).unwrap_or(year_back)
}

/// The first day (in the listener's zone) of `range` ending `today`: 28 days for 4 weeks.
pub fn from_day(today: NaiveDate, range: TimeRange) -> NaiveDate {
    today - (window(range) - chrono::Duration::days(1))
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

/// Rows of (local day, ms, plays) as days, oldest first.
fn day_minutes(mut rows: Vec<(NaiveDate, i64, i64)>) -> Vec<DayMinutes> {
    rows.sort_by_key(|(day, _, _)| *day);
    rows.into_iter()
        .map(|(day, ms, plays)| DayMinutes {
            day: day.to_string(),
            minutes: minutes(ms),
            plays: u32::try_from(plays).unwrap_or(u32::MAX),
        })
        .collect()
}

/// Every day with plays, in the listener's zone, oldest first.
pub async fn days(remote: &PgPool, spotify_id: &str) -> Result<Vec<DayMinutes>, sqlx::Error> {
    let rows: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(DAYS.sql)
        .bind(spotify_id)
        .fetch_all(remote)
        .await?;
    Ok(day_minutes(rows))
}

/// Minutes per weekday (Monday first) and hour, in the listener's zone, from `from_day` on.
pub async fn week(
    remote: &PgPool,
    spotify_id: &str,
    from_day: NaiveDate,
) -> Result<Vec<Vec<u32>>, sqlx::Error> {
    let rows: Vec<(i16, i16, i64)> = sqlx::query_as(WEEK.sql)
        .bind(spotify_id)
        .bind(from_day)
        .fetch_all(remote)
        .await?;
    let mut grid = vec![vec![0u32; 24]; 7];
    for (dow, hour, ms) in rows {
        let (Ok(d), Ok(h)) = (usize::try_from(dow - 1), usize::try_from(hour)) else {
            continue;
        };
        if let Some(cell) = grid.get_mut(d).and_then(|row| row.get_mut(h)) {
            *cell = minutes(ms);
        }
    }
    Ok(grid)
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

/// `read` over every node's plays, unless a node is marked down (then at once); a read held
/// past its deadline has every node asked at once (in the background), and those that do
/// not answer are marked down.
pub async fn on_every_node<T, E>(
    stores: &Stores,
    read: impl std::future::Future<Output = Result<T, E>>,
    missed: impl FnOnce(&E) -> bool,
) -> Result<T, E>
where
    E: From<crate::server::store::breaker::Down>,
{
    if let Some(down) = stores.analytics.down() {
        return Err(down.into());
    }
    let result = read.await;
    if let Err(e) = &result {
        if missed(e) {
            let analytics = stores.analytics.clone();
            tokio::spawn(async move { analytics.probe_all().await });
        }
    }
    result
}

/// The artist page's plays panel for `spotify_id` and the artist called `artist_name` (its
/// listener count reads every node).
pub async fn artist_plays(
    stores: &Stores,
    spotify_id: &str,
    artist_name: &str,
) -> Result<ArtistPlays, ListeningError> {
    on_every_node(
        stores,
        artist_plays_from(&stores.remote, spotify_id, artist_name),
        ListeningError::node_missed,
    )
    .await
}

async fn artist_plays_from(
    remote: &PgPool,
    spotify_id: &str,
    artist_name: &str,
) -> Result<ArtistPlays, ListeningError> {
    let zone = bounded(zone(remote, spotify_id)).await?;
    let days = async {
        sqlx::query_as::<_, (NaiveDate, i64, i64)>(ARTIST_DAYS.sql)
            .bind(spotify_id)
            .bind(artist_name)
            .bind(&zone.name)
            .fetch_all(remote)
            .await
    };
    let listeners = async {
        sqlx::query_scalar::<_, i64>(ARTIST_LISTENERS.sql)
            .bind(artist_name)
            .fetch_one(remote)
            .await
    };
    let (days, listeners) = tokio::try_join!(bounded(days), bounded(listeners))?;
    let (ms, plays) = days
        .iter()
        .fold((0i64, 0i64), |(ms, n), (_, m, p)| (ms + m, n + p));
    let days = day_minutes(days);
    Ok(ArtistPlays {
        plays: u32::try_from(plays).unwrap_or(u32::MAX),
        minutes: minutes(ms),
        first_day: days.first().map(|d| d.day.clone()),
        months: months(&days),
        listeners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calendar_starts_on_the_first_of_the_month_a_year_back() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(calendar_from(day("2026-12-08")), day("2025-12-01"));
        assert_eq!(calendar_from(day("2026-12-31")), day("2026-01-01"));
        assert_eq!(calendar_from(day("2026-12-30")), day("2025-12-01"));
        assert_eq!(calendar_from(day("2028-02-29")), day("2027-03-01"));
    }
}
