//! Trending on this instance (Redis sorted sets over the plays on the analytics nodes):
//! every listener's new plays counted once, today and over seven days; Redis flushed or
//! a write that missed Redis: counted again from the plays, never shown short; Redis
//! down: the panel says so. Real Redis, real clusters.

mod common;

use chrono::NaiveDate;
use common::{TestApp, TestEnv};
use personalify::server::plays::{self, Play, Source};
use personalify::server::trending;
use std::collections::BTreeMap;

/// The day these tests call today: yesterday (UTC), taken once per test, so a test that
/// runs across midnight counts the same day throughout.
fn the_day() -> NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Duration::days(1)
}

/// A play `minute` minutes before noon, `days_ago` days before `day`.
fn play(day: NaiveDate, days_ago: i64, minute: i64, track: &str, artist: &str) -> Play {
    let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    Play {
        played_at: noon - chrono::Duration::days(days_ago) - chrono::Duration::minutes(minute),
        track_id: Some(format!("{artist}-{track}")),
        track_name: track.to_string(),
        artist_name: artist.to_string(),
        artist_id: None,
        album_name: None,
        ms_played: 200_000,
        source: Source::Recent,
    }
}

/// Plays per artist on every node on `day` (UTC) or over the seven days to it, counted
/// directly: what trending must say.
async fn direct(app: &TestApp, day: NaiveDate, week: bool) -> BTreeMap<String, i64> {
    let from = if week {
        day - chrono::Duration::days(6)
    } else {
        day
    };
    let mut out = BTreeMap::new();
    for node in app.state.stores.analytics.nodes() {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT artist_name, count(*) FROM plays
              WHERE (played_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2 GROUP BY 1",
        )
        .bind(from)
        .bind(day)
        .fetch_all(&node.pool)
        .await
        .unwrap();
        for (artist, n) in rows {
            *out.entry(artist).or_default() += n;
        }
    }
    out
}

fn shown(trend: &personalify::domain::trending::Trend) -> BTreeMap<String, i64> {
    trend.artists.iter().cloned().collect()
}

#[tokio::test]
async fn every_listeners_new_plays_count_once_today_and_over_the_week() {
    let day = the_day();
    let app = TestEnv::new().await.with_second_node().await.spawn().await;
    let stores = &app.state.stores;
    // Nothing yet: empty lists, not an error.
    let empty = trending::load_on(stores, day).await.unwrap();
    assert!(empty.today.artists.is_empty() && empty.week.artists.is_empty());

    let ana: Vec<Play> = (0..6)
        .map(|i| play(day, 0, i * 4, &format!("s{}", i % 2), "Alpha"))
        .chain((0..3).map(|i| play(day, 3, i * 4, "s9", "Beta")))
        .collect();
    let ben: Vec<Play> = (0..4)
        .map(|i| play(day, 0, i * 5 + 1, "t1", "Beta"))
        .collect();
    plays::store_routed(stores, "ana", &ana).await.unwrap();
    plays::store_routed(stores, "ben", &ben).await.unwrap();
    // The same plays again (a replayed poll): stored once, counted once.
    plays::store_routed(stores, "ana", &ana).await.unwrap();

    let view = trending::load_on(stores, day).await.unwrap();
    assert_eq!(shown(&view.today), direct(&app, day, false).await);
    assert_eq!(shown(&view.week), direct(&app, day, true).await);
    assert_eq!(view.today.artists[0], ("Alpha".to_string(), 6));
    assert_eq!(
        view.week.artists,
        vec![("Beta".to_string(), 7), ("Alpha".to_string(), 6)]
    );
    assert!(view
        .week
        .tracks
        .contains(&("t1".to_string(), "Beta".to_string(), 4)));

    // Built now: new plays are added to the sets (no count again), and still equal.
    let cy: Vec<Play> = (0..5)
        .map(|i| play(day, 0, i * 3 + 2, "u1", "Gamma"))
        .collect();
    plays::store_routed(stores, "cy", &cy).await.unwrap();
    let view = trending::load_on(stores, day).await.unwrap();
    assert_eq!(view.rebuilt_days, 0, "added, not counted again");
    assert_eq!(shown(&view.today), direct(&app, day, false).await);
    assert_eq!(shown(&view.week), direct(&app, day, true).await);

    // The keys, as documented.
    let key = stores.cache.key(&format!("trending:daily:{day}:artists"));
    let score: Option<f64> = {
        use fred::prelude::*;
        stores.cache.client.zscore(&key, "Gamma").await.unwrap()
    };
    assert_eq!(score, Some(5.0));
    app.shutdown().await;
}

#[tokio::test]
async fn flushed_or_missed_by_a_write_trending_is_counted_again_never_shown_short() {
    let day = the_day();
    let (env, proxy) = TestEnv::new().await.behind_proxy("REDIS_URL").await;
    let app = env.spawn().await;
    let stores = &app.state.stores;
    let first: Vec<Play> = (0..8)
        .map(|i| play(day, 0, i, &format!("s{i}"), "Alpha"))
        .collect();
    plays::store_routed(stores, "ana", &first).await.unwrap();
    assert_eq!(
        trending::load_on(stores, day).await.unwrap().today.artists[0].1,
        8
    );

    // Redis flushed (here: this installation's keys deleted): counted from the plays.
    stores.cache.delete_matching("trending:*").await.unwrap();
    let view = trending::load_on(stores, day).await.unwrap();
    assert!(view.rebuilt_days >= 7, "{}", view.rebuilt_days);
    assert_eq!(shown(&view.today), direct(&app, day, false).await);

    // Redis down while plays are written: the panel says so, and the writes are not lost
    // to it — the day is marked, and counted again once Redis is back.
    proxy.take_down().await;
    let more: Vec<Play> = (0..5).map(|i| play(day, 0, 30 + i, "s1", "Beta")).collect();
    plays::store_routed(stores, "ben", &more).await.unwrap();
    let err = trending::load_on(stores, day).await.unwrap_err();
    assert!(err.to_string().contains("Redis"), "{err}");
    let dirty: i64 = sqlx::query_scalar("SELECT count(*) FROM trending_dirty")
        .fetch_one(&stores.main)
        .await
        .unwrap();
    assert_eq!(dirty, 1, "today is marked to be counted again");
    proxy.resume().await;
    // The client reconnects on its own.
    let mut view = None;
    for _ in 0..50 {
        if let Ok(v) = trending::load_on(stores, day).await {
            view = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let view = view.expect("Redis is back");
    assert!(view.rebuilt_days >= 1);
    assert_eq!(shown(&view.today), direct(&app, day, false).await);
    assert_eq!(shown(&view.today).get("Beta"), Some(&5));
    let dirty: i64 = sqlx::query_scalar("SELECT count(*) FROM trending_dirty")
        .fetch_one(&stores.main)
        .await
        .unwrap();
    assert_eq!(dirty, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_write_while_the_day_is_being_counted_is_not_lost() {
    let day = the_day();
    let app = TestEnv::new().await.spawn().await;
    let stores = &app.state.stores;
    plays::store_routed(stores, "ana", &[play(day, 0, 1, "s", "Alpha")])
        .await
        .unwrap();
    trending::load_on(stores, day).await.unwrap();
    // A count of today starts (its marker says so) and the write reads that marker.
    let marker = stores.cache.key(&format!("trending:daily:{day}:built"));
    {
        use fred::prelude::*;
        let _: () = stores
            .cache
            .client
            .set(&marker, "building:other", None, None, false)
            .await
            .unwrap();
    }
    plays::store_routed(stores, "ben", &[play(day, 0, 2, "t", "Beta")])
        .await
        .unwrap();
    let dirty: Vec<chrono::NaiveDate> = sqlx::query_scalar("SELECT day FROM trending_dirty")
        .fetch_all(&stores.main)
        .await
        .unwrap();
    assert_eq!(
        dirty,
        vec![day],
        "not added to a set being replaced: marked"
    );
    let view = trending::load_on(stores, day).await.unwrap();
    assert_eq!(shown(&view.today), direct(&app, day, false).await);
    app.shutdown().await;
}

#[tokio::test]
async fn an_imports_recent_plays_are_counted_per_day_artist_and_track() {
    let day = the_day();
    let app = TestEnv::new().await.spawn().await;
    let node = &app.state.stores.analytics.pool;
    let batch: Vec<Play> = (0..6)
        .map(|i| play(day, i % 2, i, "s", "Alpha"))
        .chain([play(day, 30, 0, "old", "Omega")])
        .collect();
    personalify::server::plays::import::stage(node, 5, "ana", &batch)
        .await
        .unwrap();
    let (stored, recent) = personalify::server::plays::import::finalize_counted(node, 5)
        .await
        .unwrap();
    assert_eq!(stored, 7);
    let total: i64 = recent.iter().map(|(.., n)| n).sum();
    assert_eq!(total, 6, "the 30-day-old play is not trending: {recent:?}");
    assert!(recent.iter().all(|(_, a, t, _)| a == "Alpha" && t == "s"));
    // Run again: nothing new, nothing counted.
    let (again, none) = personalify::server::plays::import::finalize_counted(node, 5)
        .await
        .unwrap();
    assert_eq!((again, none.len()), (7, 0));
    app.shutdown().await;
}
