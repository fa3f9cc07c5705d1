//! Recently-played ingest against the simulator (which, like Spotify, shows a listener's
//! last 50 plays) and real clusters: every play exactly once across polls, a restart and
//! an analytics outage; the overlap rule between sources.

mod common;

use common::{TestApp, TestEnv};
use personalify::server::plays::{self, ingest, Play, Source};
use personalify::server::sync::SyncUser;
use std::collections::BTreeSet;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// (track id, played_at in Unix ms) of every play of `user` on the analytics node.
async fn stored(app: &TestApp, user: &SyncUser) -> Vec<(String, i64)> {
    // Twice: after the node was down (a proxy the test took down), the pool may still hold
    // a connection that broke meanwhile; the first query on it fails and discards it.
    let read = || {
        sqlx::query_as(
            "SELECT track_id, (extract(epoch FROM played_at) * 1000)::bigint
               FROM plays WHERE spotify_id = $1 ORDER BY played_at",
        )
        .bind(&user.spotify_id)
        .fetch_all(&app.state.stores.analytics.pool)
    };
    match read().await {
        Ok(rows) => rows,
        Err(_) => read().await.expect("plays"),
    }
}

fn sim(app: &TestApp) -> &personalify::server::sim::Simulator {
    app.state.sim.as_ref().expect("demo mode")
}

/// What recently played shows at the simulator's "now": the newest 50 plays.
fn visible_now(app: &TestApp, user: &SyncUser) -> Vec<(String, i64)> {
    let now = sim(app).now_ms();
    let week = sim(app).plays_between(&user.spotify_id, now - 7 * 86_400_000, now);
    week[week.len().saturating_sub(50)..].to_vec()
}

async fn poll(app: &TestApp, user: &SyncUser) -> ingest::Polled {
    ingest::poll_user(&app.state, user)
        .await
        .expect("the poll succeeds")
}

#[tokio::test]
async fn polls_store_every_play_once_across_hours_and_a_restart() {
    let app = TestEnv::new().await.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    sim(&app).freeze();
    let first = visible_now(&app, &user);
    assert_eq!(first.len(), 50, "a demo listener has a week of plays");
    let t0 = sim(&app).now_ms();

    let polled = poll(&app, &user).await;
    assert_eq!((polled.fetched, polled.stored, polled.stashed), (50, 50, 0));
    assert_eq!(stored(&app, &user).await, first);
    let again = poll(&app, &user).await;
    assert_eq!(
        (again.fetched, again.stored),
        (0, 0),
        "nothing new, nothing doubled"
    );

    // A day of listening, polled hourly (fewer than 50 plays an hour: nothing is lost).
    for _ in 0..24 {
        sim(&app).advance_by(HOUR);
        poll(&app, &user).await;
    }
    let mut expected: BTreeSet<(String, i64)> = first.iter().cloned().collect();
    expected.extend(sim(&app).plays_between(&user.spotify_id, t0, t0 + 24 * 3_600_000));
    let after_a_day = stored(&app, &user).await;
    assert_eq!(after_a_day.len(), expected.len(), "no duplicates");
    assert_eq!(after_a_day.into_iter().collect::<BTreeSet<_>>(), expected);
    let cursor: i64 = sqlx::query_scalar("SELECT after_ms FROM play_cursors WHERE user_id = $1")
        .bind(user.user_id)
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(Some(cursor), expected.iter().map(|(_, t)| *t).max());

    // A restart: a new process (and simulator, whose clock starts at t0 again), the same
    // stores. The cursor holds: nothing is fetched twice, and the next hour arrives whole.
    let env = app.stop().await;
    let app = env.spawn().await;
    sim(&app).freeze();
    let polled = poll(&app, &user).await;
    assert_eq!(polled.stored, 0, "{polled:?}");
    sim(&app).advance_by(25 * HOUR);
    poll(&app, &user).await;
    let now = sim(&app).now_ms();
    assert!(now > t0 + 25 * 3_600_000);
    expected.extend(sim(&app).plays_between(&user.spotify_id, t0, now));
    let after_restart = stored(&app, &user).await;
    assert_eq!(after_restart.len(), expected.len(), "no duplicates");
    assert_eq!(after_restart.into_iter().collect::<BTreeSet<_>>(), expected);
    app.shutdown().await;
}

#[tokio::test]
async fn plays_polled_while_the_analytics_node_is_down_wait_on_main_and_arrive_once() {
    let (env, proxy) = TestEnv::new()
        .await
        .behind_proxy("ANALYTICS_DATABASE_URL")
        .await;
    let app = env.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    sim(&app).freeze();
    let first = visible_now(&app, &user);
    // The node's pool holds several connections when it goes down (a busy server does),
    // and each of them breaks: delivery afterwards must get past all of them.
    let node = &app.state.stores.analytics.pool;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(node.acquire().await.expect("the node answers"));
    }
    drop(held);
    // (A connection goes back to the pool on a task of its own.)
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while node.num_idle() < 8 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(node.num_idle() >= 8, "{} idle", node.num_idle());

    proxy.take_down().await;
    let polled = poll(&app, &user).await;
    assert_eq!((polled.fetched, polled.stored, polled.stashed), (50, 0, 50));
    let t0 = sim(&app).now_ms();
    // Hours go by; polls go on (the cursor moves; the plays wait on main).
    for _ in 0..3 {
        sim(&app).advance_by(HOUR);
        poll(&app, &user).await;
    }
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(jsonb_array_length(plays)), 0)::bigint FROM play_stash",
    )
    .fetch_one(&app.state.stores.main)
    .await
    .unwrap();
    let mut expected: BTreeSet<(String, i64)> = first.into_iter().collect();
    expected.extend(sim(&app).plays_between(&user.spotify_id, t0, t0 + 3 * 3_600_000));
    assert_eq!(waiting as usize, expected.len());

    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM play_stash")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    proxy.resume().await;
    let delivered = ingest::deliver_stash(&app.state).await.expect("delivered");
    assert_eq!(
        delivered as i64, batches,
        "every batch delivered at the first call, past the broken connections"
    );
    let rest: i64 = sqlx::query_scalar("SELECT count(*) FROM play_stash")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(rest, 0, "delivered batches are removed");
    assert_eq!(ingest::deliver_stash(&app.state).await.unwrap(), 0);
    let polled = poll(&app, &user).await;
    assert_eq!(polled.stored, 0, "{polled:?}");
    let now = stored(&app, &user).await;
    assert_eq!(now.len(), expected.len(), "no duplicates");
    assert_eq!(now.into_iter().collect::<BTreeSet<_>>(), expected);
    app.shutdown().await;
}

fn play(at_ms: i64, track: &str, source: Source) -> Play {
    Play {
        played_at: chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
        track_id: Some(track.to_string()),
        track_name: format!("Song {track}"),
        artist_name: "Band".into(),
        artist_id: None,
        album_name: None,
        ms_played: 200_000,
        source,
    }
}

#[tokio::test]
async fn the_same_play_from_two_sources_is_stored_once_and_two_real_plays_twice() {
    let app = TestEnv::new().await.spawn().await;
    let pool = &app.state.stores.analytics.pool;
    let t = 1_780_000_000_000;
    let recent = [
        play(t, "a", Source::Recent),
        play(t + 45_000, "a", Source::Recent),
    ];
    // Two polls: the second play is checked against the first, already stored.
    assert_eq!(plays::store(pool, "ana", &recent[..1]).await.unwrap(), 1);
    assert_eq!(
        plays::store(pool, "ana", &recent[1..]).await.unwrap(),
        1,
        "two plays 45 s apart"
    );
    assert_eq!(
        plays::store(pool, "ana", &recent).await.unwrap(),
        0,
        "the same poll again"
    );
    // The export's record of the first play, stamped 20 s off; a different track at the
    // same time; the same track 5 minutes later; a play without a track id, twice.
    let mut export = vec![
        play(t + 20_000, "a", Source::Extended),
        play(t, "b", Source::Extended),
        play(t + 300_000, "a", Source::Extended),
    ];
    let mut nameless = play(t + 600_000, "x", Source::Account);
    nameless.track_id = None;
    export.push(nameless.clone());
    assert_eq!(plays::store(pool, "ana", &export).await.unwrap(), 3);
    assert_eq!(plays::store(pool, "ana", &[nameless]).await.unwrap(), 0);
    // Another listener's identical play is theirs.
    assert_eq!(plays::store(pool, "ben", &recent[..1]).await.unwrap(), 1);
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT track_key FROM plays WHERE spotify_id = 'ana' ORDER BY played_at, track_key",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(keys.len(), 5);
    assert!(keys[4].starts_with("name:"), "{keys:?}");
    app.shutdown().await;
}
