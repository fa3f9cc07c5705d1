//! The analytics nodes' read replica (logical replication into a third cluster, a database
//! per node): set up by the app, a new play arrives there, its lag is on `/readyz`, and the
//! instance-wide count trending needs is read from it — from the nodes when it is down,
//! behind, or a partition is moving. Real clusters on loopback.

mod common;

use common::TestEnv;
use personalify::server::plays::{self, Play, Source};
use personalify::server::store::replica::{self, Replica};
use personalify::server::trending;
use std::time::Duration;

/// A play `minutes` before noon UTC on `day`: a fixed time of a day the test names, so the
/// day's count does not depend on when the test runs.
fn play(day: chrono::NaiveDate, minutes: i64, track: &str, artist: &str) -> Play {
    Play {
        played_at: day.and_hms_opt(12, 0, 0).unwrap().and_utc()
            - chrono::Duration::minutes(minutes),
        track_id: Some(track.to_string()),
        track_name: format!("Song {track}"),
        artist_name: artist.to_string(),
        artist_id: None,
        album_name: None,
        ms_played: 180_000,
        source: Source::Recent,
    }
}

async fn on_replica(replica: &Replica, node: usize, who: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
        .bind(who)
        .fetch_one(&replica.dbs[node].pool)
        .await
        .unwrap_or(-1)
}

#[tokio::test]
async fn plays_reach_the_replica_and_instance_wide_reads_use_it_or_the_nodes() {
    let env = TestEnv::new()
        .await
        .with_second_node()
        .await
        .with_replica()
        .await;
    let (env, proxy) = env.behind_proxy("ANALYTICS_REPLICA_DATABASE_URL").await;
    let app = env.spawn().await;
    let stores = &app.state.stores;
    let replica = common::ready_replica(&app).await;
    assert_eq!(replica.dbs.len(), 2, "a database per node");

    // Listeners on each node; their plays arrive in their node's database there.
    let main = &stores.main;
    let mut on = [None, None];
    for i in 0.. {
        let who = format!("r-{i}");
        let part = personalify::server::shards::part_of(main, &who)
            .await
            .unwrap();
        let slot = &mut on[usize::from(part % 2 == 1)];
        if slot.is_none() {
            *slot = Some(who);
        }
        if on.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(a), Some(b)] = on else {
        unreachable!()
    };
    // Trending is read as of yesterday (UTC), the day the plays are on.
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    plays::store_routed(
        stores,
        &a,
        &(0..4)
            .map(|i| play(day, i, "x", "Alpha"))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    plays::store_routed(
        stores,
        &b,
        &(0..3)
            .map(|i| play(day, i, "y", "Beta"))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert!(
        common::eventually(20, || async {
            on_replica(&replica, 0, &a).await == 4 && on_replica(&replica, 1, &b).await == 3
        })
        .await,
        "new plays appear on the replica, each node's in its database"
    );
    assert_eq!(on_replica(&replica, 1, &a).await, 0);

    // The heartbeat makes its lag known; then instance-wide reads go to it.
    replica::beat(&stores.analytics).await;
    assert!(common::eventually(10, || async { replica.usable(main).await }).await);
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    let nodes = ready["replica"].as_array().expect("replica on /readyz");
    assert_eq!(nodes.len(), 2, "{ready}");
    assert!(
        nodes
            .iter()
            .all(|n| n["status"] == "ok" && n["lag_secs"].is_number()),
        "{ready}"
    );
    let view = trending::load_on(stores, day).await.unwrap();
    assert_eq!(view.counted_on.as_deref(), Some("the read replica"));
    let today: std::collections::BTreeMap<String, i64> =
        view.today.artists.iter().cloned().collect();
    assert_eq!(today.get("Alpha"), Some(&4));
    assert_eq!(today.get("Beta"), Some(&3));

    // A partition moving: the replica holds it twice for a moment, so reads leave it.
    sqlx::query("UPDATE shard_placements SET moving_since = now() WHERE part = 0")
        .execute(main)
        .await
        .unwrap();
    assert!(!replica.usable(main).await);
    sqlx::query("UPDATE shard_placements SET moving_since = NULL")
        .execute(main)
        .await
        .unwrap();

    // A real move: the partition leaves the old node's database on the replica (its
    // TRUNCATE is replicated) and arrives in the new one's; until the replica has caught
    // up with the move, reads do not use it; after, it counts the same.
    let part = personalify::server::shards::part_of(main, &a)
        .await
        .unwrap();
    personalify::server::shards::move_partition(
        &stores.analytics,
        main,
        i64::from(part),
        "analytics-2",
    )
    .await
    .unwrap();
    assert!(
        !replica.usable(main).await,
        "no heartbeat since the move yet"
    );
    assert!(
        common::eventually(20, || async {
            on_replica(&replica, 0, &a).await == 0 && on_replica(&replica, 1, &a).await == 4
        })
        .await,
        "the moved partition is in the new node's database only"
    );
    replica::beat(&stores.analytics).await;
    assert!(common::eventually(10, || async { replica.usable(main).await }).await);
    stores.cache.delete_matching("trending:*").await.unwrap();
    let view = trending::load_on(stores, day).await.unwrap();
    assert_eq!(view.counted_on.as_deref(), Some("the read replica"));
    let moved: std::collections::BTreeMap<String, i64> =
        view.today.artists.iter().cloned().collect();
    assert_eq!(moved, today, "nothing counted twice after the move");

    // The replica down: the same answer, from the nodes; /readyz says so, still 200.
    proxy.take_down().await;
    assert!(!replica.usable(main).await);
    stores.cache.delete_matching("trending:*").await.unwrap();
    let view = trending::load_on(stores, day).await.unwrap();
    assert_eq!(view.counted_on.as_deref(), Some("the analytics nodes"));
    let again: std::collections::BTreeMap<String, i64> =
        view.today.artists.iter().cloned().collect();
    assert_eq!(again, today);
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let ready: serde_json::Value = response.json().await.unwrap();
    assert!(
        ready["replica"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "down"),
        "{ready}"
    );
    proxy.resume().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_replica_behind_by_more_than_the_bound_is_not_read() {
    let env = TestEnv::new()
        .await
        .with_replica()
        .await
        .set("REPLICA_MAX_LAG_SECS", "1");
    let app = env.spawn().await;
    let replica = common::ready_replica(&app).await;
    let main = &app.state.stores.main;
    replica::beat(&app.state.stores.analytics).await;
    assert!(common::eventually(10, || async { replica.usable(main).await }).await);
    // No heartbeat for longer than the bound: behind.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!replica.usable(main).await);
    let lags = replica.lags().await;
    assert!(lags[0].as_ref().unwrap().secs.unwrap() > 1.0);
    app.shutdown().await;
}

/// The replica server's log (scripts/services.sh writes it under the data folder).
fn replica_log() -> String {
    let data_dir = std::env::var("PERSONALIFY_DATA_DIR")
        .unwrap_or_else(|_| format!("{}/.data", env!("CARGO_MANIFEST_DIR")));
    std::fs::read_to_string(format!("{data_dir}/log/analytics-replica.log"))
        .expect("the replica's server log (scripts/services.sh)")
}

#[tokio::test]
async fn the_nodes_password_never_reaches_the_replicas_log() {
    use sqlx::Connection;
    let env = TestEnv::new().await.with_replica().await;
    // The replica database, logging every statement with its parameters.
    let url = env.vars["ANALYTICS_REPLICA_DATABASE_URL"].clone();
    let db = url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(&common::with_database(&url, "postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{db}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE \"{db}\" SET log_statement = 'all'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let replica = sqlx::PgPool::connect(&url).await.unwrap();

    // A node that does not answer, reached with a password only this test knows: the
    // subscription fails after its connection string (with the password) was built.
    let port = common::closed_port();
    let marker = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let node = personalify::server::config::FdwTarget {
        port,
        password: marker.clone().into(),
        ..env.config().unwrap().analytics_fdw
    };
    let failed = replica::subscribe(&replica, "pfy_password_test", &node).await;
    let Err(error) = failed else {
        panic!("a subscription to a closed port was created")
    };
    assert!(
        error.to_string().contains("could not connect"),
        "the reason is kept: {error}"
    );
    assert!(!error.to_string().contains(&marker), "{error}");

    let log = replica_log();
    assert!(
        log.contains("set_config('personalify.sub_conn'")
            && log.contains(&format!("port {port} failed")),
        "the statements and the failure were logged (else this test proves nothing)"
    );
    if let Some(at) = log.find(&marker) {
        let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
        let line: String = log[line_start..].chars().take(300).collect();
        panic!("the node's password is in the replica's log: {line}");
    }
    replica.close().await;
    sqlx::query(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
