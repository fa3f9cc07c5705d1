//! Trending on this instance, in Redis sorted sets: per UTC day, plays per artist
//! (`trending:daily:{yyyy-mm-dd}:artists`) and per track (`…:tracks`, member "track␟artist"),
//! kept for [`KEEP_DAYS`] days; today is one day's set, the last seven days their
//! `ZUNIONSTORE` (`trending:week:{yyyy-mm-dd}:artists` / `:tracks`, a minute).
//!
//! The sets are a copy of what the plays on the analytics nodes say, and are never shown
//! when they may be wrong. A day's marker `trending:daily:{day}:built` says its sets were
//! counted from the plays (`built:<token>`), are being counted (`building:<token>`), or
//! nothing (missing: never counted, expired, or Redis flushed). A reader counts again
//! from the plays every day whose marker is not `built`, or that main's `trending_dirty`
//! names, before answering. A writer reads the markers of the days it writes before it
//! writes; after its plays are committed it adds them to the sets in one Lua script only
//! if the marker is still what it read and says `built` — else (a count ran meanwhile, or
//! Redis did not answer) it names the day in `trending_dirty`, and the next reader counts
//! it again. The marker lasts [`BUILT_SECS`], so a day is counted from the plays at least
//! that often whatever happened (a process killed between its write and its addition).

use crate::domain::names::bounded_name;
use crate::domain::trending::{split_track, Trend, TrendingView, TRACK_SEPARATOR};
use crate::server::plays::Play;
use crate::server::store::Stores;
use chrono::{NaiveDate, Utc};
use fred::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Days a day's sets are kept (the week's union needs seven).
pub const KEEP_DAYS: i64 = 8;
/// A counted day is counted again from the plays after this long.
pub const BUILT_SECS: i64 = 600;
/// Rows in each list.
pub const TOP: i64 = 10;
/// The whole answer, counting included, gets this long: less than the Listening page's
/// own panels (5 s), so a stalled store never makes the page wait longer for trending
/// (the soak found /listening at 6 s with 8 here while a store stalled).
pub const DEADLINE: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum TrendingError {
    #[error("Redis is not answering, so trending cannot be shown")]
    Redis(String),
    #[error("the analytics nodes did not answer, so trending could not be counted")]
    Nodes(String),
    #[error("main did not answer: {0}")]
    Main(#[from] sqlx::Error),
    #[error("trending took longer than {} s", DEADLINE.as_secs())]
    TimedOut,
    #[error("{0}, so trending cannot be counted right now")]
    Down(#[from] crate::server::store::breaker::Down),
}

/// One day's keys.
struct DayKeys {
    artists: String,
    tracks: String,
    built: String,
}

fn day_keys(stores: &Stores, day: NaiveDate) -> DayKeys {
    let base = stores.cache.key(&format!("trending:daily:{day}"));
    DayKeys {
        artists: format!("{base}:artists"),
        tracks: format!("{base}:tracks"),
        built: format!("{base}:built"),
    }
}

/// The days a trending list may show: today and the six before (UTC).
fn window(today: NaiveDate) -> Vec<NaiveDate> {
    (0..7)
        .rev()
        .map(|d| today - chrono::Duration::days(d))
        .collect()
}

/// Seconds a day's sets live: until [`KEEP_DAYS`] after the day ends.
fn ttl_secs(day: NaiveDate) -> i64 {
    let end = (day + chrono::Duration::days(KEEP_DAYS + 1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now);
    (end - Utc::now()).num_seconds().max(60)
}

/// What a writer read before writing: each recent day its plays fall on, with its marker
/// then ("" when missing); `None` for a day whose marker could not be read.
#[derive(Debug, Clone, Default)]
pub struct Seen(Vec<(NaiveDate, Option<String>)>);

/// The days of `plays` trending can show (the last [`KEEP_DAYS`]).
fn recent_days(plays: &[Play]) -> Vec<NaiveDate> {
    let oldest = Utc::now().date_naive() - chrono::Duration::days(KEEP_DAYS);
    let mut days: Vec<NaiveDate> = plays
        .iter()
        .map(|p| p.played_at.date_naive())
        .filter(|d| *d >= oldest)
        .collect();
    days.sort();
    days.dedup();
    days
}

/// Read the markers of the days `plays` fall on, before they are written.
pub async fn seen(stores: &Stores, plays: &[Play]) -> Seen {
    seen_days(stores, recent_days(plays)).await
}

/// Every day trending may show (for a write whose plays are not known beforehand: an
/// import's move).
pub fn recent_window() -> Vec<NaiveDate> {
    let today = Utc::now().date_naive();
    (0..=KEEP_DAYS)
        .rev()
        .map(|d| today - chrono::Duration::days(d))
        .collect()
}

/// Read the markers of `days`.
pub async fn seen_days(stores: &Stores, days: Vec<NaiveDate>) -> Seen {
    if days.is_empty() {
        return Seen::default();
    }
    let keys: Vec<String> = days.iter().map(|d| day_keys(stores, *d).built).collect();
    let markers: Result<Vec<Option<String>>, _> = match stores.cache.fast() {
        Ok(client) => client.mget(keys).await,
        Err(down) => Err(down),
    };
    match markers.map_err(|e| stores.cache.failed(e)) {
        Ok(markers) => Seen(
            days.into_iter()
                .zip(markers)
                .map(|(d, m)| (d, Some(m.unwrap_or_default())))
                .collect(),
        ),
        Err(_) => Seen(days.into_iter().map(|d| (d, None)).collect()),
    }
}

/// One day's plays per artist and per track member (`track␟artist`).
struct Tally {
    artists: BTreeMap<String, i64>,
    tracks: BTreeMap<String, i64>,
}

impl Tally {
    fn of(rows: &[(NaiveDate, String, String, i64)], day: NaiveDate) -> Self {
        let mut tally = Tally {
            artists: BTreeMap::new(),
            tracks: BTreeMap::new(),
        };
        for (_, artist, track, n) in rows.iter().filter(|(d, ..)| *d == day) {
            *tally.artists.entry(artist.clone()).or_default() += n;
            *tally
                .tracks
                .entry(format!("{track}{TRACK_SEPARATOR}{artist}"))
                .or_default() += n;
        }
        tally
    }

    /// A script's arguments: `head`, the number of artist pairs, then (member, plays)
    /// pairs, artists first.
    fn arguments(&self, mut head: Vec<String>) -> Vec<String> {
        head.push(self.artists.len().to_string());
        for (member, n) in self.artists.iter().chain(&self.tracks) {
            head.push(member.clone());
            head.push(n.to_string());
        }
        head
    }
}

/// Add to a day's sets if its marker is what the writer saw and says the day is counted:
/// KEYS built, artists, tracks; ARGV seen marker, number of artist pairs, then (member,
/// plays) pairs, artists first. 1: added (or nothing to add to); 0: the day must be
/// counted again.
const ADD_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
if cur == '' then return 1 end
if string.sub(cur, 1, 6) ~= 'built:' then return 0 end
local artists = tonumber(ARGV[2])
local i = 3
for n = 1, artists do
  redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], ARGV[i])
  i = i + 2
end
while i <= #ARGV do
  redis.call('ZINCRBY', KEYS[3], ARGV[i + 1], ARGV[i])
  i = i + 2
end
return 1
";

/// After `plays` were committed (of which `new` are the ones stored: the counts to add,
/// per day, artist and track), add them to the days' sets, or mark those days to be
/// counted again. Never fails: trending is a copy.
pub async fn add(stores: &Stores, seen: &Seen, new: &[(NaiveDate, String, String, i64)]) {
    for (day, marker) in &seen.0 {
        let day_counts = Tally::of(new, *day);
        if day_counts.artists.is_empty() {
            continue;
        }
        let added = match marker {
            None => false,
            Some(marker) => {
                let keys = day_keys(stores, *day);
                let args = day_counts.arguments(vec![marker.clone()]);
                let result: Result<i64, _> = match stores.cache.fast() {
                    Ok(client) => {
                        client
                            .eval(
                                ADD_SCRIPT,
                                vec![keys.built, keys.artists, keys.tracks],
                                args,
                            )
                            .await
                    }
                    Err(down) => Err(down),
                };
                matches!(result.map_err(|e| stores.cache.failed(e)), Ok(1))
            }
        };
        if !added {
            mark_dirty(stores, *day).await;
        }
    }
}

async fn mark_dirty(stores: &Stores, day: NaiveDate) {
    let marked = sqlx::query("INSERT INTO trending_dirty (day) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(day)
        .execute(&stores.main)
        .await;
    if let Err(e) = marked {
        tracing::warn!(error = %e, %day, "cannot mark a trending day to be counted again");
    }
}

/// Install a day's counts if the marker is still this count's: KEYS built, artists,
/// tracks; ARGV token, ttl, built secs, number of artist pairs, then pairs.
const INSTALL_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= 'building:' .. ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
local artists = tonumber(ARGV[4])
local i = 5
for n = 1, artists do
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  i = i + 2
end
while i <= #ARGV do
  redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
  i = i + 2
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[1], 'built:' .. ARGV[1], 'EX', ARGV[3])
return 1
";

/// Count `days` again from the plays on the nodes (one query over every partition) and
/// install each day's sets. Returns how many days were installed.
async fn rebuild(
    stores: &Stores,
    days: &[NaiveDate],
) -> Result<(u32, &'static str), TrendingError> {
    let token = format!("{:016x}", rand::random::<u64>());
    let client = stores
        .cache
        .fast()
        .map_err(|e| TrendingError::Redis(stores.cache.failed(e)))?;
    for day in days {
        let _: () = client
            .set(
                day_keys(stores, *day).built,
                format!("building:{token}"),
                Some(Expiration::EX(120)),
                None,
                false,
            )
            .await
            .map_err(|e| TrendingError::Redis(stores.cache.failed(e)))?;
    }
    sqlx::query("DELETE FROM trending_dirty WHERE day = ANY($1)")
        .bind(days)
        .execute(&stores.main)
        .await?;
    let (first, last) = (days[0], days[days.len() - 1]);
    let from = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let to = (last + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let (rows, source) = count_plays(stores, from, to).await?;
    let mut installed = 0;
    for day in days {
        let keys = day_keys(stores, *day);
        let args = Tally::of(&rows, *day).arguments(vec![
            token.clone(),
            ttl_secs(*day).to_string(),
            BUILT_SECS.to_string(),
        ]);
        let done: i64 = client
            .eval(
                INSTALL_SCRIPT,
                vec![keys.built, keys.artists, keys.tracks],
                args,
            )
            .await
            .map_err(|e| TrendingError::Redis(stores.cache.failed(e)))?;
        installed += u32::try_from(done).unwrap_or(0);
    }
    Ok((installed, source))
}

/// Plays per UTC day, artist and track in [from, to): from the read replica when it is
/// usable (its databases, one per node, summed), else from the nodes through main (every
/// partition). Says which.
async fn count_plays(
    stores: &Stores,
    from: Option<chrono::DateTime<Utc>>,
    to: Option<chrono::DateTime<Utc>>,
) -> Result<(Vec<(NaiveDate, String, String, i64)>, &'static str), TrendingError> {
    const COUNT: &str =
        "SELECT (played_at AT TIME ZONE 'UTC')::date, artist_name, track_name, count(*)
                           FROM {plays} WHERE played_at >= $1 AND played_at < $2 GROUP BY 1, 2, 3";
    if let Some(replica) = &stores.replica {
        if replica.usable(&stores.main).await {
            let sql = COUNT.replace("{plays}", "plays");
            let mut rows = Vec::new();
            let mut complete = true;
            for db in &replica.dbs {
                match sqlx::query_as::<_, (NaiveDate, String, String, i64)>(&sql)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&db.pool)
                    .await
                {
                    Ok(part) => rows.extend(part),
                    Err(e) => {
                        tracing::warn!(error = %e, "the read replica failed; counting on the nodes");
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                return Ok((rows, "the read replica"));
            }
        }
    }
    let counted = async {
        sqlx::query_as(&COUNT.replace("{plays}", "analytics.plays"))
            .bind(from)
            .bind(to)
            .fetch_all(&stores.remote)
            .await
            .map_err(|e| TrendingError::Nodes(e.to_string()))
    };
    let rows = crate::server::listening::on_every_node(stores, counted, |e| {
        matches!(e, TrendingError::Nodes(_))
    })
    .await?;
    Ok((rows, "the analytics nodes"))
}

/// Today's and the week's lists, counting again first what may be wrong.
pub async fn load(stores: &Stores) -> Result<TrendingView, TrendingError> {
    load_on(stores, Utc::now().date_naive()).await
}

/// [`load`] as it is on `today` (UTC), one of the last [`KEEP_DAYS`]: the lists of that
/// day and the six before. Tests name the day their plays fall on, so crossing midnight
/// while they run changes nothing.
pub async fn load_on(stores: &Stores, today: NaiveDate) -> Result<TrendingView, TrendingError> {
    match tokio::time::timeout(DEADLINE, load_day(stores, today)).await {
        Ok(result) => result,
        Err(_) => {
            // Which store held it up is not known: ask Redis and the nodes now, and mark
            // down those that do not answer, so the next page need not wait too.
            let (cache, analytics) = (stores.cache.clone(), stores.analytics.clone());
            tokio::spawn(async move {
                tokio::join!(cache.breaker.probe_now(), analytics.probe_all());
            });
            Err(TrendingError::TimedOut)
        }
    }
}

async fn load_day(stores: &Stores, today: NaiveDate) -> Result<TrendingView, TrendingError> {
    let days = window(today);
    let redis = |e: fred::error::Error| TrendingError::Redis(stores.cache.failed(e));
    let client = stores.cache.fast().map_err(redis)?;
    let mut rebuilt_days = 0;
    let mut counted_on = None;
    // A concurrent reader may count the same days and win the marker: look again.
    for _ in 0..3 {
        let markers: Vec<Option<String>> = client
            .mget(
                days.iter()
                    .map(|d| day_keys(stores, *d).built)
                    .collect::<Vec<_>>(),
            )
            .await
            .map_err(redis)?;
        let dirty: Vec<NaiveDate> =
            sqlx::query_scalar("SELECT day FROM trending_dirty WHERE day >= $1")
                .bind(days[0])
                .fetch_all(&stores.main)
                .await?;
        let stale: Vec<NaiveDate> = days
            .iter()
            .zip(&markers)
            .filter(|(d, m)| {
                dirty.contains(d) || !m.as_deref().is_some_and(|m| m.starts_with("built:"))
            })
            .map(|(d, _)| *d)
            .collect();
        if stale.is_empty() {
            let today_keys = day_keys(stores, today);
            let week_base = stores.cache.key(&format!("trending:week:{today}"));
            let (week_artists, week_tracks) = (
                format!("{week_base}:artists"),
                format!("{week_base}:tracks"),
            );
            for (dest, pick) in [(&week_artists, 0), (&week_tracks, 1)] {
                let sources: Vec<String> = days
                    .iter()
                    .map(|d| {
                        let k = day_keys(stores, *d);
                        if pick == 0 {
                            k.artists
                        } else {
                            k.tracks
                        }
                    })
                    .collect();
                let _: i64 = client
                    .zunionstore(dest.as_str(), sources, None, None)
                    .await
                    .map_err(redis)?;
                let _: bool = client
                    .expire(dest.as_str(), 60, None)
                    .await
                    .map_err(redis)?;
            }
            let today_trend = read(stores, &today_keys.artists, &today_keys.tracks).await?;
            let week_trend = read(stores, &week_artists, &week_tracks).await?;
            return Ok(TrendingView {
                day: today.to_string(),
                today: today_trend,
                week: week_trend,
                rebuilt_days,
                counted_on,
            });
        }
        let (installed, source) = rebuild(stores, &stale).await?;
        rebuilt_days += installed;
        counted_on = Some(source.to_string());
    }
    Err(TrendingError::TimedOut)
}

async fn read(stores: &Stores, artists: &str, tracks: &str) -> Result<Trend, TrendingError> {
    let redis = |e: fred::error::Error| TrendingError::Redis(stores.cache.failed(e));
    let client = stores.cache.fast().map_err(redis)?;
    let top_artists: Vec<(String, f64)> = client
        .zrevrange(artists, 0, TOP - 1, true)
        .await
        .map_err(redis)?;
    let top_tracks: Vec<(String, f64)> = client
        .zrevrange(tracks, 0, TOP - 1, true)
        .await
        .map_err(redis)?;
    Ok(Trend {
        // Bounded again as shown: plays stored before names were bounded at the edge may
        // hold any length, and this panel is every listener's.
        artists: top_artists
            .into_iter()
            .map(|(a, n)| (bounded_name(a), n.round() as i64))
            .collect(),
        tracks: top_tracks
            .into_iter()
            .map(|(member, n)| {
                let (track, artist) = split_track(&member);
                (bounded_name(track), bounded_name(artist), n.round() as i64)
            })
            .collect(),
    })
}

/// The counts of stored plays per recent day, artist and track: what [`add`] adds.
pub fn counts(stored: &[crate::server::plays::Stored]) -> Vec<(NaiveDate, String, String, i64)> {
    let oldest = Utc::now().date_naive() - chrono::Duration::days(KEEP_DAYS);
    let mut out: BTreeMap<(NaiveDate, String, String), i64> = BTreeMap::new();
    for (at, artist, track) in stored {
        let day = at.date_naive();
        if day >= oldest {
            *out.entry((day, artist.clone(), track.clone())).or_default() += 1;
        }
    }
    out.into_iter().map(|((d, a, t), n)| (d, a, t, n)).collect()
}
