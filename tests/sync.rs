//! The sync pipeline end to end: the simulator as Spotify, real PostgreSQL, MongoDB, Redis.

mod common;

use common::{TestApp, TestEnv};
use fred::interfaces::KeysInterface;
use mongodb::bson::doc;
use personalify::domain::{Genres, SyncStatus, TimeRange};
use personalify::server::sync::{read, SyncUser, Trigger};

async fn signed_in(env: TestEnv) -> (TestApp, SyncUser, reqwest::Client) {
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    (app, user, browser)
}

async fn sync(app: &TestApp, user: &SyncUser) -> personalify::domain::SyncProgress {
    app.sync(user).await
}

/// (time_range, rank, id) of a user's list, in order.
async fn list(
    app: &TestApp,
    table: &str,
    column: &str,
    spotify_id: &str,
) -> Vec<(String, i16, String)> {
    sqlx::query_as(&format!(
        "SELECT time_range, rank, {column} FROM {table} WHERE spotify_id = $1 ORDER BY time_range, rank"
    ))
    .bind(spotify_id)
    .fetch_all(&app.state.stores.main)
    .await
    .unwrap()
}

async fn mongo_count(app: &TestApp, collection: &str, spotify_id: &str) -> u64 {
    app.state
        .stores
        .mongo
        .db
        .collection::<mongodb::bson::Document>(collection)
        .count_documents(doc! { "spotify_id": spotify_id })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sync_writes_rows_documents_and_keys_for_all_three_ranges() {
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    let done = sync(&app, &user).await;
    assert_eq!(done.status, SyncStatus::Succeeded, "{done:?}");

    let artists = list(&app, "user_artists", "artist_id", &user.spotify_id).await;
    let tracks = list(&app, "user_tracks", "track_id", &user.spotify_id).await;
    for range in TimeRange::ALL {
        for rows in [&artists, &tracks] {
            let ranks: Vec<i16> = rows
                .iter()
                .filter(|r| r.0 == range.as_str())
                .map(|r| r.1)
                .collect();
            assert!(
                ranks.len() >= 50 && ranks.len() <= 99,
                "{range}: {} rows",
                ranks.len()
            );
            assert_eq!(
                ranks,
                (1..=ranks.len() as i16).collect::<Vec<_>>(),
                "ranks are 1..N"
            );
        }
    }
    assert_eq!(done.artists, Some(artists.len() as u32));
    let (status, counted): (String, i32) =
        sqlx::query_as("SELECT status, artists_count FROM sync_runs WHERE id = $1")
            .bind(done.run_id)
            .fetch_one(&app.state.stores.main)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), counted as usize),
        ("succeeded", artists.len())
    );
    // Genres were written for the artists.
    let genres: i64 = sqlx::query_scalar("SELECT count(*) FROM artist_genres")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert!(genres > 0);

    assert_eq!(mongo_count(&app, "user_syncs", &user.spotify_id).await, 3);
    assert_eq!(
        mongo_count(&app, "user_sync_history", &user.spotify_id).await,
        3
    );
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mongo_outbox WHERE parked_at IS NULL")
            .fetch_one(&app.state.stores.main)
            .await
            .unwrap();
    assert_eq!(pending, 0);

    for range in TimeRange::ALL {
        let cached = app
            .state
            .stores
            .cache
            .get_top(&user.spotify_id, range)
            .await
            .unwrap()
            .expect("cached");
        let mut conn = app.state.stores.main.acquire().await.unwrap();
        let rebuilt =
            personalify::server::sync::records::read_payload(&mut conn, &user.spotify_id, range)
                .await
                .unwrap()
                .unwrap();
        if cached != rebuilt {
            let (a, b) = (
                serde_json::to_value(&cached).unwrap(),
                serde_json::to_value(&rebuilt).unwrap(),
            );
            for key in [
                "spotify_id",
                "time_range",
                "sync_id",
                "synced_at",
                "artists",
                "tracks",
                "genres",
            ] {
                if a[key] != b[key] {
                    let (x, y) = (a[key].to_string(), b[key].to_string());
                    let at = x
                        .chars()
                        .zip(y.chars())
                        .position(|(p, q)| p != q)
                        .unwrap_or(0);
                    panic!(
                        "{range} {key} differs at {at}: cache {:?} vs db {:?}",
                        x.get(at.saturating_sub(80)..(at + 80).min(x.len())),
                        y.get(at.saturating_sub(80)..(at + 80).min(y.len()))
                    );
                }
            }
        }
        assert!(matches!(cached.genres, Genres::Available { ref shares } if !shares.is_empty()));
        let ttl: i64 = app
            .state
            .stores
            .cache
            .client
            .ttl(app.state.stores.cache.top_key(&user.spotify_id, range))
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 6 * 3600, "ttl {ttl}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn syncing_twice_changes_nothing_but_sync_times() {
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    let first = sync(&app, &user).await;
    let artists = list(&app, "user_artists", "artist_id", &user.spotify_id).await;
    let tracks = list(&app, "user_tracks", "track_id", &user.spotify_id).await;
    let catalogue: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, updated_at FROM artists ORDER BY id")
            .fetch_all(&app.state.stores.main)
            .await
            .unwrap();

    let second = sync(&app, &user).await;
    assert_eq!(second.status, SyncStatus::Succeeded);
    assert_ne!(first.run_id, second.run_id);
    assert_eq!(
        list(&app, "user_artists", "artist_id", &user.spotify_id).await,
        artists
    );
    assert_eq!(
        list(&app, "user_tracks", "track_id", &user.spotify_id).await,
        tracks
    );
    let catalogue_after: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, updated_at FROM artists ORDER BY id")
            .fetch_all(&app.state.stores.main)
            .await
            .unwrap();
    assert_eq!(
        catalogue_after, catalogue,
        "unchanged artists are not rewritten"
    );
    let runs: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT sync_run_id FROM user_artists WHERE spotify_id = $1")
            .bind(&user.spotify_id)
            .fetch_all(&app.state.stores.main)
            .await
            .unwrap();
    assert_eq!(
        runs,
        vec![second.run_id],
        "the lists now belong to the second sync"
    );
    assert_eq!(mongo_count(&app, "user_syncs", &user.spotify_id).await, 3);
    assert_eq!(
        mongo_count(&app, "user_sync_history", &user.spotify_id).await,
        6
    );
    app.shutdown().await;
}

#[tokio::test]
async fn two_concurrent_syncs_for_one_user_are_one_run() {
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    let (a, b) = tokio::join!(
        app.state
            .syncs
            .start(&app.state, user.clone(), Trigger::Manual),
        app.state
            .syncs
            .start(&app.state, user.clone(), Trigger::Manual),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.run_id(), b.run_id());
    assert!(a.joined != b.joined, "one started, the other joined");
    let (a, b) = tokio::join!(a.finished(), b.finished());
    assert_eq!(a, b);
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE user_id = $1")
        .bind(user.user_id)
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn another_day_brings_movement_into_the_payload_and_the_history_alike() {
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    let first = sync(&app, &user).await;
    let (payload, _) = read::top_payload(&app.state, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        payload.previous_sync_id, None,
        "a first sync has nothing to compare"
    );
    assert!(payload.artists.iter().all(|a| a.previous_rank.is_none()));

    app.sim().advance_days(1);
    let second = sync(&app, &user).await;
    // Movement was computed by the sync, in its transaction, and stored with the lists.
    let (payload, _) = read::top_payload(&app.state, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payload.sync_id, second.run_id);
    assert_eq!(payload.previous_sync_id, Some(first.run_id));
    let moved = payload
        .artists
        .iter()
        .filter(|a| a.previous_rank != Some(a.rank))
        .count();
    assert!(moved > 0, "a new day moves some short-term ranks");

    // The history page reads the same movement from MongoDB's snapshots.
    let view = personalify::server::sync::history::load_view(
        &app.state.stores,
        app.state.config.cache_ttl,
        user.user_id,
        &user.spotify_id,
        TimeRange::ShortTerm,
        10,
    )
    .await
    .unwrap();
    assert!(!view.changes.first_sync);
    assert_eq!(view.sync_id, Some(second.run_id));
    assert_eq!(view.history.synced_at.len(), 2);
    let from_history: Vec<(String, Option<u16>)> = view
        .changes
        .artists
        .iter()
        .filter(|c| c.rank.is_some())
        .map(|c| (c.id.clone(), c.previous_rank))
        .collect();
    let from_payload: Vec<(String, Option<u16>)> = payload
        .artists
        .iter()
        .map(|a| (a.id.clone(), a.previous_rank))
        .collect();
    assert_eq!(from_payload, from_history);
    app.shutdown().await;
}

#[tokio::test]
async fn with_mongodb_down_the_sync_commits_and_the_outbox_delivers_once_later() {
    let env = TestEnv::new().await.store_down("MONGODB_URL");
    let database = env.vars["MONGODB_DATABASE"].clone();
    let (app, user, _) = signed_in(env).await;
    let done = sync(&app, &user).await;
    assert_eq!(done.status, SyncStatus::Succeeded, "{done:?}");
    assert!(!list(&app, "user_artists", "artist_id", &user.spotify_id)
        .await
        .is_empty());
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mongo_outbox WHERE parked_at IS NULL")
            .fetch_one(&app.state.stores.main)
            .await
            .unwrap();
    assert_eq!(pending, 3, "one snapshot per range waits for MongoDB");

    // MongoDB is back (a client that reaches it): the outbox delivers, once.
    let url = std::env::var("MONGODB_URL").unwrap_or_else(|_| common::MONGO_URL.to_string());
    let mongo = personalify::server::store::mongo::Mongo::connect(
        &url.into(),
        &database,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let pool = &app.state.stores.main;
    let first = personalify::server::sync::outbox::deliver_pending(pool, &mongo)
        .await
        .unwrap();
    assert_eq!(first.delivered, 3);
    let again = personalify::server::sync::outbox::deliver_pending(pool, &mongo)
        .await
        .unwrap();
    assert_eq!(again.delivered, 0);
    let count = |c: &'static str| {
        let mongo = mongo.clone();
        let id = user.spotify_id.clone();
        async move {
            mongo
                .db
                .collection::<mongodb::bson::Document>(c)
                .count_documents(doc! { "spotify_id": id })
                .await
                .unwrap()
        }
    };
    assert_eq!(count("user_sync_history").await, 3);
    assert_eq!(count("user_syncs").await, 3);
    app.shutdown().await;
}

#[tokio::test]
async fn with_redis_down_the_dashboard_is_served_from_postgresql() {
    let env = TestEnv::new().await.store_down("REDIS_URL");
    let (app, user, browser) = signed_in(env).await;
    let done = sync(&app, &user).await;
    assert_eq!(
        done.status,
        SyncStatus::Succeeded,
        "a cache that is down does not fail the sync"
    );
    let (payload, source) = read::top_payload(&app.state, &user.spotify_id, TimeRange::LongTerm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(source, read::Source::Database);
    assert!(payload.artists.len() >= 50);

    let res = browser
        .post(app.url("/api/top"))
        .form(&[("range", "long_term")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let view: serde_json::Value = res.json().await.unwrap();
    assert_eq!(view["lists"]["range"], "long_term");
    assert_eq!(view["lists"]["artists"][0]["rank"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn spotify_failing_mid_sync_commits_nothing_records_why_and_a_retry_succeeds() {
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    // Top tracks keep failing while the artist lists succeed: a failure part-way.
    app.sim().fail_next_on("/v1/me/top/tracks", 500, 1000);
    let failed = sync(&app, &user).await;
    assert_eq!(failed.status, SyncStatus::Failed);
    let reason = failed.error.clone().unwrap();
    assert!(reason.contains("Spotify is having trouble"), "{reason}");
    assert!(list(&app, "user_artists", "artist_id", &user.spotify_id)
        .await
        .is_empty());
    assert!(list(&app, "user_tracks", "track_id", &user.spotify_id)
        .await
        .is_empty());
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM mongo_outbox")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM sync_runs WHERE id = $1")
            .bind(failed.run_id)
            .fetch_one(&app.state.stores.main)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some(reason.as_str()))
    );

    // Rate limited beyond what we wait out: also a clean failure, with the reason.
    app.sim().clear_faults();
    app.sim().rate_limit_next(600, 1);
    let limited = sync(&app, &user).await;
    assert_eq!(limited.status, SyncStatus::Failed);
    assert!(
        limited.error.unwrap().contains("rate limiting"),
        "429 is named"
    );

    let retried = sync(&app, &user).await;
    assert_eq!(retried.status, SyncStatus::Succeeded);
    assert!(!list(&app, "user_artists", "artist_id", &user.spotify_id)
        .await
        .is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn the_2026_field_shape_syncs_with_genres_marked_unavailable() {
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    app.sim().set_stripped(true);
    let done = sync(&app, &user).await;
    assert_eq!(done.status, SyncStatus::Succeeded, "{done:?}");
    let payload = app
        .state
        .stores
        .cache
        .get_top(&user.spotify_id, TimeRange::MediumTerm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payload.genres, Genres::Unavailable);
    assert!(payload
        .artists
        .iter()
        .all(|a| a.genres.is_none() && a.popularity.is_none()));
    let known: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM artists WHERE genres_known OR popularity IS NOT NULL",
    )
    .fetch_one(&app.state.stores.main)
    .await
    .unwrap();
    assert_eq!(known, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_first_visit_starts_a_sync_and_then_shows_the_data() {
    let (app, _, browser) = signed_in(TestEnv::new().await).await;
    let res = browser
        .post(app.url("/api/top"))
        .form(&[("range", "short_term")])
        .send()
        .await
        .unwrap();
    let view: serde_json::Value = res.json().await.unwrap();
    assert_eq!(view["lists"], serde_json::Value::Null);
    assert_eq!(view["sync"]["status"], "running");
    let mut shown = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let res = browser
            .post(app.url("/api/top"))
            .form(&[("range", "short_term")])
            .send()
            .await
            .unwrap();
        shown = res.json().await.unwrap();
        if !shown["lists"].is_null() {
            break;
        }
    }
    assert_eq!(shown["lists"]["range"], "short_term");
    // Without a session: a clear "sign in" error, not data.
    let anonymous = app
        .http
        .post(app.url("/api/top"))
        .form(&[("range", "short_term")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body, serde_json::json!("NotSignedIn"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_range_is_a_client_error() {
    let (app, _, browser) = signed_in(TestEnv::new().await).await;
    let res = browser
        .post(app.url("/api/top"))
        .form(&[("range", "forever")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.contains("unknown time range"), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_scheduler_picks_connected_users_whose_data_is_old() {
    use personalify::server::sync::schedule::due_users;
    let (app, user, _) = signed_in(TestEnv::new().await).await;
    let due = |app: &TestApp| {
        let state = app.state.clone();
        async move {
            due_users(&state)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.user_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(&app).await, vec![user.user_id], "never synced: due");
    sync(&app, &user).await;
    assert!(due(&app).await.is_empty(), "just synced: not due");
    sqlx::query("UPDATE sync_runs SET started_at = now() - interval '3 days', finished_at = now() - interval '2 days'")
        .execute(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(
        due(&app).await,
        vec![user.user_id],
        "older than SYNC_MAX_AGE_HOURS: due"
    );
    sqlx::query("UPDATE spotify_tokens SET needs_relogin = true")
        .execute(&app.state.stores.main)
        .await
        .unwrap();
    assert!(
        due(&app).await.is_empty(),
        "waiting for a new sign-in: not due"
    );
    app.shutdown().await;
}

fn done_of(status: &serde_json::Value) -> u64 {
    status["done_steps"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn progress_is_readable_while_a_sync_runs() {
    let (app, user, browser) = signed_in(TestEnv::new().await).await;
    app.sim().set_latency(std::time::Duration::from_millis(150));
    let started = app
        .state
        .syncs
        .start(&app.state, user.clone(), Trigger::Manual)
        .await
        .unwrap();
    let mut seen_partial = None;
    for _ in 0..200 {
        let res = browser
            .post(app.url("/api/sync_status"))
            .send()
            .await
            .unwrap();
        let status: serde_json::Value = res.json().await.unwrap();
        let done = status["done_steps"].as_u64().unwrap_or(0);
        if status["status"] == "running" && done > 0 && done < 7 {
            seen_partial = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let partial = seen_partial.expect("a running sync with some lists fetched");
    assert_eq!(partial["total_steps"], 7);
    // The six lists arrive together (the same latency each): the poll may first see them
    // all fetched and the sync saving.
    assert!(
        partial["current"]
            .as_str()
            .is_some_and(|c| c.starts_with("Top ") || (c == "Saving" && done_of(&partial) == 6)),
        "{partial}"
    );
    let last = started.finished().await;
    assert_eq!(last.status, SyncStatus::Succeeded);
    // After the end, the status comes from the record.
    let status: serde_json::Value = browser
        .post(app.url("/api/sync_status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["run_id"], last.run_id);
    // "Sync now" through the API starts a new run.
    let now: serde_json::Value = browser
        .post(app.url("/api/sync"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["status"], "running");
    assert_ne!(now["run_id"], last.run_id);
    app.sim().set_latency(std::time::Duration::ZERO);
    app.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_shows_movement_since_the_last_sync() {
    let (app, user, browser) = signed_in(TestEnv::new().await).await;
    sync(&app, &user).await;
    let first = app.page(&browser, "/dashboard?range=short_term").await;
    assert!(
        first.contains("data-testid=\"top-artists\""),
        "lists rendered on the server"
    );
    assert!(
        !first.contains("since the last sync"),
        "no movement after the first sync"
    );

    app.sim().advance_days(1);
    sync(&app, &user).await;
    let second = app.page(&browser, "/dashboard?range=short_term").await;
    assert!(
        second.contains("data-testid=\"movement\""),
        "movement badges after a day"
    );
    // The genre donut: built on the server, its slices the payload's top genres.
    let charts = common::chart_options(&app, &browser, &second).await;
    assert_eq!(charts.len(), 1);
    assert_eq!(charts[0].0, "genre-chart");
    let slices = charts[0].1["series"][0]["data"].as_array().unwrap();
    assert!(!slices.is_empty());
    let total: f64 = slices.iter().map(|s| s["value"].as_f64().unwrap()).sum();
    assert!(
        (total - 100.0).abs() < 1.0,
        "shares add up to 100%: {total}"
    );
    assert!(
        ["up ", "down ", "new since"]
            .iter()
            .any(|w| second.contains(w)),
        "movement is said in words too"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_history_page_shows_entries_exits_and_ranks_over_time() {
    let (app, user, browser) = signed_in(TestEnv::new().await).await;
    sync(&app, &user).await;
    let first = app.page(&browser, "/history?range=short_term").await;
    assert!(
        first.contains("data-testid=\"first-sync\""),
        "one sync: no movement yet"
    );
    app.sim().advance_days(1);
    sync(&app, &user).await;
    let page = app.page(&browser, "/history?range=short_term").await;
    assert!(page.contains("data-testid=\"entered-left\""));
    assert_eq!(
        page.matches("data-testid=\"rank-table\"").count(),
        2,
        "artists and tracks"
    );
    // Two syncs: two date columns in each table's header.
    let header = page
        .split("<thead>")
        .nth(1)
        .unwrap()
        .split("</thead>")
        .next()
        .unwrap();
    assert_eq!(header.matches("<time").count(), 2, "{header}");
    // Each table has its chart: a line per top-10 item, a point per sync.
    let charts = common::chart_options(&app, &browser, &page).await;
    let ids: Vec<&str> = charts.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["artists-rank-chart", "tracks-rank-chart"]);
    for (_, option) in &charts {
        let series = option["series"].as_array().unwrap();
        assert_eq!(series.len(), 10);
        assert!(series
            .iter()
            .all(|s| s["data"].as_array().unwrap().len() == 2));
    }
    let bad = browser
        .get(app.url("/history?range=decade"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    app.shutdown().await;
}

/// The registry of running syncs is never locked across a call to a store: while a start
/// waits for a database that stopped answering, every lookup in it still answers (pages,
/// deletion and other listeners' syncs read it).
#[tokio::test]
async fn the_sync_registry_answers_while_a_start_waits_for_the_database() {
    let (env, proxy) = TestEnv::new().await.behind_proxy("DATABASE_URL").await;
    let app = env.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    proxy.pause();
    let start = {
        let (state, user) = (app.state.clone(), user.clone());
        tokio::spawn(async move {
            state
                .syncs
                .start(&state, user, personalify::server::sync::Trigger::Manual)
                .await
                .map(|started| started.joined)
        })
    };
    let lookup = |user_id| {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            app.state.syncs.progress(user_id),
        )
    };
    common::wait_for(10, "the sync has its place", || async {
        lookup(user.user_id).await.ok().flatten().is_some()
    })
    .await;
    assert_eq!(
        lookup(user.user_id + 1)
            .await
            .expect("the registry answers"),
        None
    );
    let joined = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.state.syncs.start(
            &app.state,
            user.clone(),
            personalify::server::sync::Trigger::Manual,
        ),
    )
    .await
    .expect("a second start answers at once")
    .expect("joins");
    assert!(joined.joined);
    proxy.resume().await;
    assert_eq!(start.await.expect("the start ends").ok(), Some(false));
    app.shutdown().await;
}
