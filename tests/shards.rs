//! Plays sharded over two analytics nodes (real clusters on loopback): each listener's
//! rows on the node their partition is placed on, main reading both through its
//! partitioned foreign tables; one listener's query on one partition of one node, an
//! instance-wide aggregate on all of them concurrently with the GROUP BY sent along; and
//! one node down: the other node's listeners unaffected, plays for the down node waiting
//! on main and arriving once.

mod common;

use common::{TestApp, TestEnv};
use personalify::domain::TimeRange;
use personalify::server::listening;
use personalify::server::plays::{self, ingest, Play, Source};
use personalify::server::shards;
use personalify::server::sim::Simulator;

use sqlx::PgPool;
use std::collections::BTreeSet;

fn play(minutes_ago: i64, track: &str, artist: &str) -> Play {
    Play {
        played_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        track_id: Some(track.to_string()),
        track_name: format!("Song {track}"),
        artist_name: artist.to_string(),
        artist_id: None,
        album_name: None,
        ms_played: 180_000,
        source: Source::Recent,
    }
}

/// Each partition's node, from main.
async fn placements(app: &TestApp) -> Vec<(i16, String)> {
    sqlx::query_as("SELECT part, node FROM shard_placements ORDER BY part")
        .fetch_all(&app.state.stores.main)
        .await
        .unwrap()
}

/// A demo listener on each node: (on `analytics`, on `analytics-2`).
async fn one_on_each_node(app: &TestApp) -> (String, String) {
    let main = &app.state.stores.main;
    let placed = placements(app).await;
    let (mut first, mut second) = (None, None);
    for user in Simulator::demo_users() {
        let part = shards::part_of(main, user.id).await.unwrap();
        match placed[part as usize].1.as_str() {
            "analytics" => first = first.or(Some(user.id.to_string())),
            _ => second = second.or(Some(user.id.to_string())),
        }
    }
    (
        first.expect("a demo listener on analytics"),
        second.expect("a demo listener on analytics-2"),
    )
}

/// Listeners (`listener-N`) for every partition none of `have` is in.
async fn fill_partitions(main: &PgPool, have: &[&String]) -> Vec<String> {
    let mut covered = BTreeSet::new();
    for who in have {
        covered.insert(shards::part_of(main, who).await.unwrap());
    }
    let mut out = Vec::new();
    for i in 0.. {
        if covered.len() == 8 {
            break;
        }
        let who = format!("listener-{i}");
        if covered.insert(shards::part_of(main, &who).await.unwrap()) {
            out.push(who);
        }
    }
    out
}

async fn count_on(pool: &PgPool, who: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
        .bind(who)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_listeners_plays_are_on_their_node_and_main_reads_both() {
    let app = TestEnv::new().await.with_second_node().await.spawn().await;
    let stores = &app.state.stores;
    // Eight partitions, placed alternately: four on each node.
    let placed = placements(&app).await;
    assert_eq!(placed.len(), 8);
    for (part, node) in &placed {
        let expected = if part % 2 == 0 {
            "analytics"
        } else {
            "analytics-2"
        };
        assert_eq!(node, expected, "partition {part}");
    }
    let (a, b) = one_on_each_node(&app).await;
    let node_1 = &stores.analytics.nodes()[0].pool;
    let node_2 = &stores.analytics.nodes()[1].pool;

    let mine: Vec<Play> = (0..30)
        .map(|i| play(i * 5, &format!("t{}", i % 7), "Band"))
        .collect();
    assert_eq!(plays::store_routed(stores, &a, &mine).await.unwrap(), 30);
    assert_eq!(
        plays::store_routed(stores, &b, &mine[..12]).await.unwrap(),
        12
    );
    assert_eq!(
        plays::store_routed(stores, &b, &mine[..12]).await.unwrap(),
        0,
        "once"
    );
    assert_eq!(
        (count_on(node_1, &a).await, count_on(node_2, &a).await),
        (30, 0)
    );
    assert_eq!(
        (count_on(node_1, &b).await, count_on(node_2, &b).await),
        (0, 12)
    );
    // Every row on a node is in a partition placed there.
    for (pool, node) in [(node_1, "analytics"), (node_2, "analytics-2")] {
        let parts: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tableoid::regclass::text FROM plays")
                .fetch_all(pool)
                .await
                .unwrap();
        for leaf in parts {
            let part: usize = leaf.trim_start_matches("plays_p").parse().unwrap();
            assert_eq!(placed[part].1, node, "{leaf}");
        }
        let drift = plays::rollup_drift(pool).await.unwrap();
        assert!(drift.iter().all(|(_, n)| *n == 0), "{node}: {drift:?}");
    }

    // main reads both nodes: per listener, and instance-wide from the rollups.
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT spotify_id, count(*) FROM analytics.plays GROUP BY spotify_id ORDER BY 1",
    )
    .fetch_all(&stores.main)
    .await
    .unwrap();
    let mut expected = vec![(a.clone(), 30), (b.clone(), 12)];
    expected.sort();
    assert_eq!(counts, expected);
    let total: i64 =
        sqlx::query_scalar("SELECT sum(plays)::bigint FROM analytics.plays_by_listener")
            .fetch_one(&stores.main)
            .await
            .unwrap();
    assert_eq!(total, 42);
    // This instance in numbers (the Listening page), from both nodes' rollups.
    let totals = personalify::server::instance::load(stores).await.unwrap();
    assert_eq!(
        (totals.listeners, totals.plays, totals.minutes),
        (2, 42, 42 * 3)
    );
    app.shutdown().await;
}

/// `EXPLAIN (VERBOSE)` of `sql` on main, as the app's connections plan it.
async fn explain(main: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(&format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}"))
        .fetch_all(main)
        .await
        .unwrap()
}

#[tokio::test]
async fn one_listener_reads_one_partition_and_an_instance_wide_aggregate_runs_on_every_one() {
    let app = TestEnv::new().await.with_second_node().await.spawn().await;
    let stores = &app.state.stores;
    let (a, b) = one_on_each_node(&app).await;
    // Listeners in every partition, as on an instance with some dozens of people (an
    // empty partition is rightly not asked to group nothing).
    let mut listeners = vec![(a.clone(), 3000), (b.clone(), 2000)];
    for who in fill_partitions(&stores.main, &[&a, &b]).await {
        listeners.push((who, 1000));
    }
    for (who, n) in &listeners {
        let batch: Vec<Play> = (0..*n)
            .map(|i| {
                play(
                    i * 3,
                    &format!("t{}", i % 50),
                    &format!("Artist {}", i % 20),
                )
            })
            .collect();
        plays::store_routed(stores, who, &batch).await.unwrap();
    }
    personalify::server::store::fdw::analyze(&stores.main)
        .await
        .unwrap();

    // One listener: pruned to their partition, on their node, grouped there.
    let part = shards::part_of(&stores.main, &b).await.unwrap();
    let plan = explain(
        &stores.main,
        &format!(
            "SELECT artist_name, sum(ms_played) FROM analytics.plays
              WHERE spotify_id = '{b}' GROUP BY spotify_id, artist_name"
        ),
    )
    .await;
    let remote: Vec<&String> = plan.iter().filter(|l| l.contains("Remote SQL:")).collect();
    assert_eq!(remote.len(), 1, "{plan:#?}");
    assert!(
        remote[0].contains(&format!("FROM public.plays_p{part} ")),
        "{plan:#?}"
    );
    assert!(remote[0].contains("GROUP BY"), "{plan:#?}");
    assert!(!plan.iter().any(|l| l.contains("Append")), "{plan:#?}");

    // Instance-wide: every partition, scanned concurrently, each grouped on its node.
    let plan = explain(
        &stores.main,
        "SELECT spotify_id, count(*), sum(ms_played) FROM analytics.plays GROUP BY spotify_id",
    )
    .await;
    let asyncs = plan
        .iter()
        .filter(|l| l.contains("Async Foreign Scan"))
        .count();
    assert_eq!(asyncs, 8, "{plan:#?}");
    let remote: Vec<&String> = plan.iter().filter(|l| l.contains("Remote SQL:")).collect();
    assert_eq!(remote.len(), 8);
    assert!(remote.iter().all(|l| l.contains("GROUP BY")), "{plan:#?}");
    // Without partitionwise aggregation the nodes send every row (what the app avoids).
    let mut conn = stores.main.acquire().await.unwrap();
    sqlx::query("SET enable_partitionwise_aggregate = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let flat: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (VERBOSE, COSTS OFF)
         SELECT spotify_id, count(*) FROM analytics.plays GROUP BY spotify_id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    sqlx::query("RESET enable_partitionwise_aggregate")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(
        !flat
            .iter()
            .any(|l| l.contains("Remote SQL:") && l.contains("GROUP BY")),
        "{flat:#?}"
    );
    drop(conn);

    // The answers are the plays.
    let rows: BTreeSet<(String, i64)> =
        sqlx::query_as("SELECT spotify_id, count(*) FROM analytics.plays GROUP BY spotify_id")
            .fetch_all(&stores.main)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(rows, listeners.into_iter().collect::<BTreeSet<_>>());
    app.shutdown().await;
}

#[tokio::test]
async fn with_one_node_down_the_other_nodes_listeners_see_their_panels_and_plays_wait_then_arrive_once(
) {
    let env = TestEnv::new().await.with_second_node().await;
    // analytics-2 behind a proxy, for the app and for main's postgres_fdw alike.
    let (env, proxy) = env.behind_proxy("ANALYTICS_2_DATABASE_URL").await;
    let env = env.set("ANALYTICS_2_FDW_PORT", proxy.port.to_string());
    let app = env.spawn().await;
    let stores = &app.state.stores;
    let (a, b) = one_on_each_node(&app).await;
    let (browser_a, user_a) = app.signed_in(Some(&a)).await;
    let (browser_b, user_b) = app.signed_in(Some(&b)).await;
    let sim = app.state.sim.as_ref().expect("demo mode");
    // Yesterday at noon UTC: the demo listeners listen in the afternoon, whenever the test
    // runs (at 01:00 UTC the last three hours hold no plays).
    let noon = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    sim.freeze_at(
        noon.and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis(),
    );
    for user in [&user_a, &user_b] {
        let polled = ingest::poll_user(&app.state, user).await.unwrap();
        assert_eq!(polled.stashed, 0, "{polled:?}");
    }

    proxy.take_down().await;
    // a's panels answer (their node is up); b's page renders and says the panels are not
    // available; both 200.
    let view = listening::load(stores, &a, TimeRange::ShortTerm).await;
    assert!(view.is_ok(), "{:?}", view.err());
    assert!(listening::load(stores, &b, TimeRange::ShortTerm)
        .await
        .is_err());
    for (browser, fine) in [(&browser_a, true), (&browser_b, false)] {
        let response = browser.get(app.url("/listening")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let html = response.text().await.unwrap();
        assert_eq!(
            html.contains("data-testid=\"listening-unavailable\""),
            !fine,
            "{}",
            &html[..html.len().min(400)]
        );
        // The instance's totals need every node: they say so, on both pages.
        assert!(
            html.contains("data-testid=\"instance-unavailable\""),
            "{}",
            &html[..html.len().min(400)]
        );
    }
    assert!(personalify::server::instance::load(stores).await.is_err());

    // Hours of listening while the node is down: a's plays are stored, b's wait on main.
    // (Until b has listened: a demo listener may pause for up to four hours.)
    let t0 = sim.now_ms();
    for hour in 1..=12 {
        sim.advance_by(std::time::Duration::from_secs(3600));
        let polled_a = ingest::poll_user(&app.state, &user_a).await.unwrap();
        assert_eq!(polled_a.stashed, 0);
        ingest::poll_user(&app.state, &user_b).await.unwrap();
        if hour >= 3 && !sim.plays_between(&b, t0, sim.now_ms()).is_empty() {
            break;
        }
    }
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(jsonb_array_length(plays)), 0)::bigint FROM play_stash
          WHERE spotify_id = $1",
    )
    .bind(&b)
    .fetch_one(&stores.main)
    .await
    .unwrap();
    let new_b = sim.plays_between(&b, t0, sim.now_ms());
    assert_eq!(waiting as usize, new_b.len());
    assert!(waiting > 0);
    // Delivery while the node is still down keeps them.
    ingest::deliver_stash(&app.state).await.unwrap();
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM play_stash")
        .fetch_one(&stores.main)
        .await
        .unwrap();
    assert!(still > 0);

    proxy.resume().await;
    // Its reads failed while it was down, so it is marked down until its probe finds it back.
    common::wait_for(15, "analytics-2 is seen as back", || async {
        stores.analytics.nodes()[1].breaker.check().is_ok()
    })
    .await;
    ingest::deliver_stash(&app.state).await.unwrap();
    ingest::deliver_stash(&app.state).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM play_stash")
        .fetch_one(&stores.main)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let node_2 = &stores.analytics.nodes()[1].pool;
    let stored: BTreeSet<(String, i64)> = sqlx::query_as(
        "SELECT track_id, (extract(epoch FROM played_at) * 1000)::bigint
           FROM plays WHERE spotify_id = $1",
    )
    .bind(&b)
    .fetch_all(node_2)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let total: i64 = count_on(node_2, &b).await;
    assert_eq!(total as usize, stored.len(), "no play twice");
    for p in &new_b {
        assert!(stored.contains(p), "{p:?} arrived");
    }
    app.shutdown().await;
}

/// (listener, played_at in µs, track) of every play of `who` on `pool`.
async fn keys(pool: &PgPool, who: &[String]) -> BTreeSet<(String, i64, String)> {
    sqlx::query_as(
        "SELECT spotify_id, (extract(epoch FROM played_at) * 1000000)::bigint, track_key
           FROM plays WHERE spotify_id = ANY($1)",
    )
    .bind(who)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test]
async fn a_partition_moves_to_the_other_node_under_concurrent_writes_losing_and_doubling_nothing() {
    let app = TestEnv::new().await.with_second_node().await.spawn().await;
    let stores = app.state.stores.clone();
    let main = &stores.main;
    // Three listeners of partition 2 (on analytics), with plays and a time zone.
    let part = 2;
    let mut listeners = Vec::new();
    for i in 0.. {
        let who = format!("mover-{i}");
        if shards::part_of(main, &who).await.unwrap() == part {
            listeners.push(who);
        }
        if listeners.len() == 3 {
            break;
        }
    }
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let batch = move |who: usize, from: i64, n: i64| -> Vec<Play> {
        (from..from + n)
            .map(|i| Play {
                played_at: base + chrono::Duration::seconds(i * 61 + who as i64),
                track_id: Some(format!("t{}", i % 40)),
                track_name: format!("Song {}", i % 40),
                artist_name: format!("Artist {}", i % 9),
                artist_id: None,
                album_name: None,
                ms_played: 150_000,
                source: Source::Recent,
            })
            .collect()
    };
    for (n, who) in listeners.iter().enumerate() {
        plays::store_routed(&stores, who, &batch(n, 0, 8_000))
            .await
            .unwrap();
    }
    personalify::server::time_zone::set_routed(&app.state, &listeners[1], "Asia/Kolkata")
        .await
        .unwrap();
    let node_1 = stores.analytics.nodes()[0].pool.clone();
    let node_2 = stores.analytics.nodes()[1].pool.clone();
    let before = keys(&node_1, &listeners).await;
    assert_eq!(before.len(), 24_000);

    // A writer that goes on storing new plays for them (retrying what a move holds off,
    // as ingest does from its stash) while the partition moves.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stores, listeners, stop) = (stores.clone(), listeners.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut written, mut refused) = (0u64, 0u64);
            let mut k = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || k < 40 {
                let who = (k % 3) as usize;
                let plays = batch(who, 10_000 + k * 20, 20);
                loop {
                    match plays::store_routed(&stores, &listeners[who], &plays).await {
                        Ok(n) => {
                            written += n;
                            break;
                        }
                        Err(_) => {
                            refused += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    }
                }
                k += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (written, refused, k)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let moved = shards::move_partition(&stores.analytics, main, i64::from(part), "analytics-2")
        .await
        .expect("moved");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (written, _refused, batches) = writer.await.unwrap();
    assert!(written > 0 && batches >= 40);
    assert_eq!(
        (moved.from.as_str(), moved.to.as_str()),
        ("analytics", "analytics-2")
    );
    assert!(
        !moved.recopied.is_empty(),
        "writes landed during the first copy: {moved:?}"
    );

    // Every play (the first ones and every one written meanwhile) on the new node, once;
    // none left on the old one.
    let after = keys(&node_2, &listeners).await;
    assert_eq!(
        after.len() as u64,
        24_000 + written,
        "nothing lost, nothing doubled"
    );
    assert!(before.is_subset(&after));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = ANY($1)")
        .bind(&listeners)
        .fetch_one(&node_2)
        .await
        .unwrap();
    assert_eq!(rows as usize, after.len());
    assert!(keys(&node_1, &listeners).await.is_empty());
    let left_1: i64 = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM plays_by_listener_p{part}) + (SELECT count(*) FROM listener_zones_p{part})"
    ))
    .fetch_one(&node_1)
    .await
    .unwrap();
    assert_eq!(left_1, 0, "the rollups and the zone went with the plays");
    for pool in [&node_1, &node_2] {
        let drift = plays::rollup_drift(pool).await.unwrap();
        assert!(drift.iter().all(|(_, n)| *n == 0), "{drift:?}");
    }
    let zone: String =
        sqlx::query_scalar("SELECT time_zone FROM listener_zones WHERE spotify_id = $1")
            .bind(&listeners[1])
            .fetch_one(&node_2)
            .await
            .unwrap();
    assert_eq!(zone, "Asia/Kolkata");

    // main: the placement, the foreign partitions on the new server, the same answers.
    let node: String = sqlx::query_scalar("SELECT node FROM shard_placements WHERE part = $1")
        .bind(part)
        .fetch_one(main)
        .await
        .unwrap();
    assert_eq!(node, "analytics-2");
    let servers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT s.srvname::text FROM pg_foreign_table f
           JOIN pg_foreign_server s ON s.oid = f.ftserver
           JOIN pg_class c ON c.oid = f.ftrelid
          WHERE c.relname LIKE '%\\_p2'",
    )
    .fetch_all(main)
    .await
    .unwrap();
    assert_eq!(servers, vec!["analytics_2_node".to_string()]);
    let through_main: i64 =
        sqlx::query_scalar("SELECT count(*) FROM analytics.plays WHERE spotify_id = ANY($1)")
            .bind(&listeners)
            .fetch_one(main)
            .await
            .unwrap();
    assert_eq!(through_main as usize, after.len());
    let view = listening::load(&stores, &listeners[1], TimeRange::LongTerm)
        .await
        .unwrap();
    assert_eq!(view.time_zone, "Asia/Kolkata");

    // Moving it where it is changes nothing; nonsense is refused, naming what is wrong.
    let again = shards::move_partition(&stores.analytics, main, i64::from(part), "analytics-2")
        .await
        .unwrap();
    assert_eq!((again.copied, again.removed), (0, 0));
    let err = shards::move_partition(&stores.analytics, main, 9, "analytics")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("0 to 7"), "{err}");
    let err = shards::move_partition(&stores.analytics, main, 1, "analytics-3")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("analytics-3"), "{err}");
    app.shutdown().await;
}

#[tokio::test]
async fn shards_status_prints_rows_and_bytes_per_partition_and_node() {
    let app = TestEnv::new().await.with_second_node().await.spawn().await;
    let stores = &app.state.stores;
    let (a, b) = one_on_each_node(&app).await;
    plays::store_routed(stores, &a, &[play(1, "x", "Band"), play(2, "y", "Band")])
        .await
        .unwrap();
    plays::store_routed(stores, &b, &[play(1, "x", "Band")])
        .await
        .unwrap();
    let vars: Vec<(String, String)> = [
        "DATABASE_URL",
        "ANALYTICS_DATABASE_URL",
        "ANALYTICS_2_DATABASE_URL",
        "ANALYTICS_2_FDW_HOST",
        "ANALYTICS_2_FDW_PORT",
        "MONGODB_URL",
        "MONGODB_DATABASE",
        "REDIS_URL",
    ]
    .into_iter()
    .map(|k| (k.to_string(), app.env.vars[k].clone()))
    .collect();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_personalify"))
            .env_clear()
            .current_dir(std::env::temp_dir())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .expect("the binary runs")
    };
    let out = run(&["shards", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let part_a = shards::part_of(&stores.main, &a).await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("p{part_a} ")))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1], "analytics", "{line}");
    assert_eq!(cells[2], "2", "a's two plays on analytics: {line}");
    assert!(text.contains("analytics: 4 partitions, 2 plays"), "{text}");
    assert!(
        text.contains("analytics-2: 4 partitions, 1 plays"),
        "{text}"
    );
    assert!(text.contains("kB"), "bytes: {text}");

    let out = run(&["shards", "move", "12", "--to", "analytics"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 to 7"));
    let out = run(&["shards", "shuffle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: personalify shards"));
    app.shutdown().await;
}

#[tokio::test]
async fn the_distributed_page_shows_one_listeners_query_on_their_node_and_the_instance_on_both() {
    let app = TestEnv::new().await.with_second_node().await.spawn().await;
    let stores = &app.state.stores;
    let (a, b) = one_on_each_node(&app).await;
    // Listeners with plays in every partition, as on an instance in use.
    let mut everyone = fill_partitions(&stores.main, &[&a, &b]).await;
    everyone.extend([a.clone(), b.clone()]);
    for who in &everyone {
        let batch: Vec<Play> = (0..500)
            .map(|i| play(i, &format!("t{i}"), "Band"))
            .collect();
        plays::store_routed(stores, who, &batch).await.unwrap();
    }
    personalify::server::store::fdw::analyze(&stores.main)
        .await
        .unwrap();
    let part = shards::part_of(&stores.main, &b).await.unwrap();
    let view = personalify::server::distributed::load(stores, &app.state.instance_runs, &b)
        .await
        .unwrap();
    assert_eq!(view.your_partition, Some(part));
    let placed: Vec<&str> = view.placements.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(placed.iter().filter(|n| **n == "analytics-2").count(), 4);
    let days = view.queries.iter().find(|q| q.name == "days").unwrap();
    assert_eq!(
        days.ran_on,
        vec![format!("analytics-2: plays_by_hour_p{part}")]
    );
    let instance = view.queries.iter().find(|q| q.name == "instance").unwrap();
    assert_eq!(instance.ran_on.len(), 2, "{:?}", instance.ran_on);
    assert!(instance.ran_on[0].starts_with("analytics: plays_p0, plays_p2"));
    assert!(instance.ran_on[1].starts_with("analytics-2: plays_p1, plays_p3"));
    assert_eq!(
        instance.rows[0][..2],
        [
            everyone.len().to_string(),
            (everyone.len() * 500).to_string()
        ]
    );
    let asyncs = instance
        .plan
        .iter()
        .filter(|l| l.contains("Async Foreign Scan"))
        .count();
    assert_eq!(asyncs, 8, "{:#?}", instance.plan);
    assert_eq!(instance.counted_secs_ago, None, "counted for this view");

    // It reads every play: for a minute, everyone gets that count, and several viewers at
    // once wait for one run. A new play changes the listener's own panels at once, not it.
    plays::store_routed(stores, &a, &[play(600, "new", "Band")])
        .await
        .unwrap();
    let mut views = tokio::task::JoinSet::new();
    for who in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let state = app.state.clone();
        views.spawn(async move {
            personalify::server::distributed::load(&state.stores, &state.instance_runs, &who)
                .await
                .unwrap()
        });
    }
    for view in views.join_all().await {
        let kept = view.queries.iter().find(|q| q.name == "instance").unwrap();
        assert!(kept.counted_secs_ago.is_some(), "the kept count");
        assert_eq!(kept.rows, instance.rows);
        assert_eq!(kept.plan, instance.plan);
    }
    app.shutdown().await;
}
