//! Your data is yours: the export holds everything about the person and no secret; deleting
//! the account removes them from PostgreSQL (main and analytics), MongoDB and Redis, ends
//! the session, and leaves everyone else untouched; expired sessions and abandoned
//! sign-ins are swept.

mod common;

use common::{TestApp, TestEnv};
use mongodb::bson::{doc, Document};
use personalify::server::plays::{self, Play, Source};
use personalify::server::store::mongo::{HISTORY, USER_SYNCS};
use personalify::server::sync::SyncUser;
use std::collections::BTreeMap;

/// Rows, documents, keys and files that mention one listener, place by place: every
/// table of main, every node (plays, rollups, staging, zone), the read replica, both
/// MongoDB collections, every Redis key (by name, and trending's members by their artist),
/// this process's kept pages, and the import folder.
type Footprint = BTreeMap<String, i64>;

/// The artist only `spotify_id`'s plays name (so trending can be searched for them).
fn artist_of(spotify_id: &str) -> String {
    format!("Artist of {spotify_id}")
}

async fn footprint(app: &TestApp, user: &SyncUser) -> Footprint {
    let pool = &app.state.stores.main;
    let id = &user.spotify_id;
    let mut out = Footprint::new();
    for (table, by_user_id) in [
        ("users WHERE id = $1", true),
        ("spotify_tokens WHERE user_id = $1", true),
        ("sessions WHERE user_id = $1", true),
        ("sync_runs WHERE user_id = $1", true),
        ("play_cursors WHERE user_id = $1", true),
        ("play_stash WHERE user_id = $1", true),
        ("imports WHERE user_id = $1", true),
        ("user_artists WHERE spotify_id = $1", false),
        ("user_tracks WHERE spotify_id = $1", false),
        ("top_payloads WHERE spotify_id = $1", false),
        ("mongo_outbox WHERE payload->>'spotify_id' = $1", false),
        ("listener_deletions WHERE spotify_id = $1", false),
        ("play_stash WHERE spotify_id = $1", false),
    ] {
        let query = format!("SELECT count(*) FROM {table}");
        let n: i64 = if by_user_id {
            sqlx::query_scalar(&query).bind(user.user_id)
        } else {
            sqlx::query_scalar(&query).bind(id)
        }
        .fetch_one(pool)
        .await
        .expect("count on main");
        out.insert(format!("main {table}"), n);
    }
    for node in app.state.stores.analytics.nodes() {
        for table in [
            "plays",
            "plays_by_hour",
            "plays_by_track",
            "plays_by_artist",
            "plays_by_listener",
            "import_staging",
            "listener_zones",
        ] {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table} WHERE spotify_id = $1"
            ))
            .bind(id)
            .fetch_one(&node.pool)
            .await
            .expect("count on a node");
            out.insert(format!("{} {table}", node.name), n);
        }
    }
    if let Some(replica) = &app.state.stores.replica {
        for db in &replica.dbs {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
                .bind(id)
                .fetch_one(&db.pool)
                .await
                .expect("count on the replica");
            out.insert(format!("replica {} plays", db.database), n);
        }
    }
    let db = &app.state.stores.mongo.db;
    for collection in [HISTORY, USER_SYNCS] {
        let n = db
            .collection::<Document>(collection)
            .count_documents(doc! { "spotify_id": id })
            .await
            .expect("count");
        out.insert(format!("mongo {collection}"), n as i64);
    }
    // Redis down: nothing can be counted there (a test that needs the keys checks they
    // were there before).
    let cache = &app.state.stores.cache;
    {
        use fred::prelude::*;
        let keys: Vec<String> = cache
            .client
            .scan_page("0", format!("{}*", cache.prefix), Some(100_000), None)
            .await
            .map(|(_, keys): (String, Vec<String>)| keys)
            .unwrap_or_default();
        let named = keys.iter().filter(|k| k.contains(id.as_str())).count();
        out.insert("redis keys named after them".into(), named as i64);
        let mut trending = 0;
        for key in keys
            .iter()
            .filter(|k| k.contains("trending:") && !k.ends_with(":built"))
        {
            let members: Vec<String> = cache
                .client
                .zrange(key.as_str(), 0, -1, None, false, None, false)
                .await
                .unwrap_or_default();
            trending += members
                .iter()
                .filter(|m| m.contains(&artist_of(id)))
                .count() as i64;
        }
        out.insert("redis trending members of their plays".into(), trending);
    }
    out.insert(
        "kept pages".into(),
        app.state.pages.len_of(user.user_id) as i64,
    );
    let dir = &app.state.config.import_dir;
    let files = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).count())
        .unwrap_or(0);
    out.insert(format!("files in {}", dir.display()), files as i64);
    out
}

/// `spotify_id`'s own plays at yesterday's noon (UTC), each a different track of their own
/// artist, written as the poller writes them (so trending counts them).
async fn add_plays(app: &TestApp, spotify_id: &str, n: i64) -> chrono::NaiveDate {
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let plays: Vec<Play> = (0..n)
        .map(|i| Play {
            played_at: noon - chrono::Duration::minutes(i),
            track_id: Some(format!("t{i}")),
            track_name: format!("Track {i}"),
            artist_name: artist_of(spotify_id),
            artist_id: None,
            album_name: None,
            ms_played: 180_000,
            source: Source::Recent,
        })
        .collect();
    plays::store_routed(&app.state.stores, spotify_id, &plays)
        .await
        .expect("plays");
    day
}

/// Every place empty.
fn nothing(before: &Footprint) -> Footprint {
    before.keys().map(|k| (k.clone(), 0)).collect()
}

/// A fresh folder for one test's uploads.
fn import_dir() -> String {
    let dir = std::env::temp_dir().join(format!("pfy-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("import folder");
    dir.display().to_string()
}

#[tokio::test]
async fn export_holds_everything_and_delete_removes_the_user_from_every_store() {
    let env = TestEnv::new()
        .await
        .with_second_node()
        .await
        .with_replica()
        .await
        .set("IMPORT_DIR", import_dir());
    let app = env.spawn().await;
    let demos = personalify::server::sim::Simulator::demo_users();
    let (alex_browser, alex) = app.signed_in(Some(demos[0].id)).await;
    let (_sari_browser, sari) = app.signed_in(Some(demos[1].id)).await;
    for user in [&alex, &sari] {
        for _ in 0..2 {
            app.sync(user).await;
        }
        add_plays(&app, &user.spotify_id, 5).await;
    }
    // What a stopped partition move left on the node alex's partition is not on.
    let home: String = sqlx::query_scalar(
        "SELECT node FROM shard_placements
          WHERE satisfies_hash_partition('shard_key'::regclass, 8, part, $1::text)",
    )
    .bind(&alex.spotify_id)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("alex's node");
    let nodes = app.state.stores.analytics.nodes();
    let other = nodes
        .iter()
        .position(|n| n.name != home)
        .expect("two nodes");
    let leftover: Vec<Play> = (0..3)
        .map(|i| Play {
            played_at: chrono::Utc::now() - chrono::Duration::days(40 + i),
            track_id: Some(format!("old{i}")),
            track_name: "Left behind".into(),
            artist_name: "Moved".into(),
            artist_id: None,
            album_name: None,
            ms_played: 100_000,
            source: Source::Extended,
        })
        .collect();
    plays::store(&nodes[other].pool, &alex.spotify_id, &leftover)
        .await
        .expect("leftovers");
    // A sync whose history waits in the outbox, a time zone of theirs on their node.
    app.state
        .syncs
        .start(
            &app.state,
            alex.clone(),
            personalify::server::sync::Trigger::Manual,
        )
        .await
        .expect("sync starts")
        .finished()
        .await;
    personalify::server::time_zone::set_routed(&app.state, &alex.spotify_id, "Asia/Jakarta")
        .await
        .expect("zone");
    // What the poller and an importer leave on main: a cursor, plays waiting for a node,
    // an import with its upload.
    app.signed_in(Some(demos[0].id)).await;
    personalify::server::plays::ingest::poll_user(&app.state, &alex)
        .await
        .expect("poll");
    sqlx::query("INSERT INTO play_stash (user_id, spotify_id, plays) VALUES ($1, $2, '[]')")
        .bind(alex.user_id)
        .bind(&alex.spotify_id)
        .execute(&app.state.stores.main)
        .await
        .expect("stash");
    let import_id: i64 = sqlx::query_scalar(
        "INSERT INTO imports (user_id, file_name, bytes, status) VALUES ($1, 'x.zip', 3, 'done')
         RETURNING id",
    )
    .bind(alex.user_id)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("import");
    std::fs::write(
        personalify::server::plays::import::upload_path(&app.state.config.import_dir, import_id),
        b"zip",
    )
    .expect("upload");
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let trend = personalify::server::trending::load_on(&app.state.stores, day)
        .await
        .expect("trending");
    assert!(trend
        .today
        .artists
        .iter()
        .any(|(a, _)| *a == artist_of(&alex.spotify_id)));
    // The replica has their plays too (5, the poll's 50, the 3 left behind).
    let replica = common::ready_replica(&app).await;
    common::wait_for(60, "the replica holds alex's plays", || async {
        let mut n = 0;
        for db in &replica.dbs {
            n += sqlx::query_scalar::<_, i64>("SELECT count(*) FROM plays WHERE spotify_id = $1")
                .bind(&alex.spotify_id)
                .fetch_one(&db.pool)
                .await
                .unwrap_or(0);
        }
        n == 55 + 3
    })
    .await;
    // Pages and views that leave keys in Redis and kept pages in memory.
    for path in ["/dashboard", "/history", "/dashboard?range=long_term"] {
        assert_eq!(
            alex_browser
                .get(app.url(path))
                .send()
                .await
                .expect("page")
                .status(),
            200
        );
    }
    let before_alex = footprint(&app, &alex).await;
    let before_sari = footprint(&app, &sari).await;
    // Each place holds something of alex's to begin with (else the test proves nothing),
    // but for the row a deletion writes and the other node.
    let empty: Vec<&String> = before_alex
        .iter()
        .filter(|(place, n)| **n == 0 && !place.contains("listener_deletions"))
        .map(|(place, _)| place)
        .collect();
    // (The other node holds only leftover plays and their rollups; the replica has a
    // database per node and copies plays only.)
    assert!(
        empty.iter().all(|p| p.contains("import_staging")
            || p.contains("listener_zones")
            || p.starts_with("replica")),
        "{empty:#?}"
    );
    assert_eq!(
        before_alex
            .iter()
            .filter(|(p, _)| p.starts_with("analytics") && p.ends_with(" plays"))
            .map(|(_, n)| n)
            .sum::<i64>(),
        55 + 3,
        "{before_alex:#?}"
    );

    // The export.
    let response = alex_browser
        .get(app.url("/account/export"))
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"personalify-demo-alex-"),
        "{disposition}"
    );
    let text = response.text().await.expect("body");
    let stored_token: Vec<u8> =
        sqlx::query_scalar("SELECT access_token FROM spotify_tokens WHERE user_id = $1")
            .bind(alex.user_id)
            .fetch_one(&app.state.stores.main)
            .await
            .expect("token");
    let plain_token = {
        let cipher = &app.state.auth.cipher;
        let key_id: String =
            sqlx::query_scalar("SELECT key_id FROM spotify_tokens WHERE user_id = $1")
                .bind(alex.user_id)
                .fetch_one(&app.state.stores.main)
                .await
                .expect("key id");
        cipher
            .open(
                &personalify::server::auth::crypto::Sealed {
                    key_id,
                    bytes: stored_token,
                },
                &format!("user:{}", alex.user_id),
            )
            .expect("the token opens")
    };
    assert!(
        !text.contains(&plain_token),
        "no Spotify token in the export"
    );
    let data: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(data["profile"]["spotify_id"], "demo-alex");
    assert_eq!(data["syncs"].as_array().map(Vec::len), Some(3));
    assert_eq!(data["top_lists"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        data["history"].as_array().map(Vec::len),
        Some(6),
        "3 ranges × 2 syncs delivered (the third waits in the outbox)"
    );
    assert_eq!(
        data["plays"].as_array().map(Vec::len),
        Some(5 + 50),
        "5 + a poll's 50, from their node"
    );
    assert!(data["recently_played_cursor"]["after_ms"].as_i64() > Some(0));
    assert_eq!(
        data["plays_waiting_for_the_analytics_node"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(data["imports"][0]["file_name"], "x.zip");
    assert!(!text.contains("demo-sari"), "nobody else's data");
    assert_eq!(
        app.http
            .get(app.url("/account/export"))
            .send()
            .await
            .expect("answer")
            .status(),
        401,
        "only for the signed-in person"
    );

    // A deletion without the confirmation changes nothing.
    let unconfirmed = alex_browser
        .post(app.url("/account/delete"))
        .form(&[("confirm", "yes")])
        .send()
        .await
        .expect("answer");
    assert_eq!(unconfirmed.status(), 400);
    assert_eq!(footprint(&app, &alex).await, before_alex);

    let deleted = alex_browser
        .post(app.url("/account/delete"))
        .form(&[("confirm", "delete")])
        .send()
        .await
        .expect("answer");
    assert_eq!(deleted.status(), 200);
    let cookie = deleted.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        cookie.starts_with("pfy_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    assert!(deleted
        .text()
        .await
        .expect("body")
        .contains("Your account is deleted"));

    // The replica follows the nodes' deletes.
    common::wait_for(60, "the replica has let go of alex's plays", || async {
        let mut n = 0;
        for db in &replica.dbs {
            n += sqlx::query_scalar::<_, i64>("SELECT count(*) FROM plays WHERE spotify_id = $1")
                .bind(&alex.spotify_id)
                .fetch_one(&db.pool)
                .await
                .unwrap_or(1);
        }
        n == 0
    })
    .await;
    // Trending is counted again, without them.
    let trend = personalify::server::trending::load_on(&app.state.stores, day)
        .await
        .expect("trending");
    assert!(!trend
        .today
        .artists
        .iter()
        .any(|(a, _)| *a == artist_of(&alex.spotify_id)));
    assert!(trend
        .today
        .artists
        .iter()
        .any(|(a, _)| *a == artist_of(&sari.spotify_id)));
    let after = footprint(&app, &alex).await;
    assert_eq!(
        after,
        nothing(&before_alex),
        "nothing of alex remains anywhere"
    );
    let mut sari_now = footprint(&app, &sari).await;
    // (The import folder is shared: alex's upload went.)
    for (place, n) in &before_sari {
        if place.starts_with("files in") {
            sari_now.insert(place.clone(), *n);
        }
    }
    assert_eq!(sari_now, before_sari, "sari is untouched");
    let done: (Option<String>, String) = sqlx::query_as(
        "SELECT spotify_id, status FROM listener_deletions WHERE listener_key = md5($1)",
    )
    .bind(&alex.spotify_id)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("the deletion's row");
    assert_eq!(
        done,
        (None, "done".to_string()),
        "only the md5 of the id is kept"
    );
    // The old session is over, even with the cookie kept.
    let viewer: serde_json::Value = alex_browser
        .post(app.url("/api/viewer"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert!(viewer.is_null(), "{viewer}");
    app.shutdown().await;
}

#[tokio::test]
async fn with_a_store_down_the_rest_is_deleted_at_once_and_that_store_when_it_is_back() {
    let (env, proxy) = TestEnv::new().await.behind_proxy("REDIS_URL").await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    add_plays(&app, &user.spotify_id, 5).await;
    assert_eq!(
        browser
            .get(app.url("/history"))
            .send()
            .await
            .expect("page")
            .status(),
        200
    );
    let before = footprint(&app, &user).await;
    assert!(before["redis keys named after them"] > 0, "{before:#?}");
    proxy.take_down().await;
    let response = browser
        .post(app.url("/account/delete"))
        .form(&[("confirm", "delete")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 202);
    let text = response.text().await.expect("body");
    assert!(text.contains("Your account is being deleted"), "{text}");
    assert!(
        text.contains("The cache (Redis) does not answer right now"),
        "{text}"
    );
    assert!(text.contains("signed out everywhere"), "{text}");
    // Everything but Redis is gone already, and the session with it.
    let viewer: serde_json::Value = browser
        .post(app.url("/api/viewer"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert!(viewer.is_null(), "{viewer}");
    let row: (String, Option<String>) = sqlx::query_as(
        "SELECT status, last_error FROM listener_deletions WHERE listener_key = md5($1)",
    )
    .bind(&user.spotify_id)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("the deletion's row");
    assert_eq!(row.0, "deleting");
    assert!(row.1.unwrap_or_default().contains("Redis"));
    // Signing in again meanwhile would bring a new account the deletion then takes: not yet.
    let again = app.browser();
    let refused = app.demo_sign_in(&again, None).await;
    assert_eq!(refused.response.status(), 409);
    assert!(refused
        .response
        .text()
        .await
        .unwrap()
        .contains("Your account is being deleted"));
    proxy.resume().await;
    // The `deletions` task's round, run here: Redis is cleared and the deletion done.
    // (The client reconnects on its own, soon.)
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        personalify::server::deletion::sweep(&app.state)
            .await
            .expect("sweep");
        if footprint(&app, &user).await == nothing(&before) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the deletion did not finish once Redis was back: {:#?}",
            footprint(&app, &user).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Done: signing in again starts afresh, and what the new account writes is kept (the
    // deletion's row, which refuses a deleted listener's writes for a while, goes).
    let (_, again) = app.signed_in(None).await;
    personalify::server::time_zone::set_routed(&app.state, &again.spotify_id, "Europe/Oslo")
        .await
        .expect("the new account's zone is saved");
    add_plays(&app, &again.spotify_id, 2).await;
    assert_eq!(footprint(&app, &again).await["analytics plays"], 2);
    app.shutdown().await;
}

/// `POST /account/delete` as `browser`, with the confirmation; its status and page text.
async fn delete_account(app: &TestApp, browser: &reqwest::Client) -> (u16, String) {
    let response = browser
        .post(app.url("/account/delete"))
        .form(&[("confirm", "delete")])
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_write_in_flight_lands_before_the_deletion_and_none_after_it() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    add_plays(&app, &user.spotify_id, 3).await;
    let before = footprint(&app, &user).await;
    let stores = &app.state.stores;
    // A poll, a stash delivery or an import's batch in the middle of its write: it holds
    // the listener's lock.
    let writer = stores
        .analytics
        .shard(&stores.main, &user.spotify_id)
        .await
        .expect("the writer's lock");
    let deleting = {
        let (app_url, browser) = (app.url("/account/delete"), browser.clone());
        tokio::spawn(async move {
            browser
                .post(app_url)
                .form(&[("confirm", "delete")])
                .send()
                .await
                .expect("answer")
        })
    };
    // The deletion waits for it (its exclusive lock is queued behind the writer's).
    common::wait_for(10, "the deletion waits for the writer", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)",
        )
        .fetch_one(&stores.main)
        .await
        .unwrap_or(false)
    })
    .await;
    let late = Play {
        played_at: chrono::Utc::now() - chrono::Duration::hours(30),
        track_id: Some("in-flight".into()),
        track_name: "In flight".into(),
        artist_name: artist_of(&user.spotify_id),
        artist_id: None,
        album_name: None,
        ms_played: 200_000,
        source: Source::Recent,
    };
    assert_eq!(
        plays::store(&writer.pool, &user.spotify_id, std::slice::from_ref(&late))
            .await
            .expect("the write in flight lands"),
        1
    );
    writer.release().await;
    let response = deleting.await.expect("the request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        footprint(&app, &user).await,
        nothing(&before),
        "its play went too"
    );
    // A writer that comes after finds the deletion and writes nothing.
    let refused = plays::store_routed(stores, &user.spotify_id, &[late]).await;
    assert!(
        matches!(
            refused,
            Err(plays::RoutedError::Shard(
                personalify::server::shards::ShardError::Deleted
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(footprint(&app, &user).await, nothing(&before));
    app.shutdown().await;
}

#[tokio::test]
async fn a_poll_racing_the_deletion_leaves_nothing_behind() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    add_plays(&app, &user.spotify_id, 3).await;
    let before = footprint(&app, &user).await;
    let sim = app.sim();
    sim.freeze();
    // Spotify answers slowly: the poll has read the token and waits for its plays while
    // the account is deleted.
    sim.set_latency(std::time::Duration::from_secs(3));
    let asked = sim.request_count("/v1/me/player/recently-played");
    let poll = {
        let (state, user) = (app.state.clone(), user.clone());
        tokio::spawn(
            async move { personalify::server::plays::ingest::poll_user(&state, &user).await },
        )
    };
    common::wait_for(10, "the poll is waiting for Spotify", || async {
        sim.request_count("/v1/me/player/recently-played") > asked
    })
    .await;
    let (status, text) = delete_account(&app, &browser).await;
    assert_eq!(status, 200, "{text}");
    // Whatever the poll does once Spotify answers, nothing of theirs is written.
    let polled = poll.await.expect("the poll ends");
    assert!(polled.is_err(), "{polled:?}");
    sim.set_latency(std::time::Duration::ZERO);
    assert_eq!(footprint(&app, &user).await, nothing(&before));
    app.shutdown().await;
}

#[tokio::test]
async fn a_deletion_during_an_import_stops_it_and_nothing_of_it_lands() {
    let env = TestEnv::new().await.set("IMPORT_DIR", import_dir());
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    add_plays(&app, &user.spotify_id, 3).await;
    let before = footprint(&app, &user).await;
    let node = app.state.stores.analytics.pool.clone();
    // Plays held on the node, so the import's final move waits with everything staged.
    let mut holder = node.begin().await.unwrap();
    sqlx::query("LOCK TABLE plays IN SHARE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(2);
    let entries: Vec<String> = (0..5_000)
        .map(|i| {
            let at = day.and_hms_opt(12, 0, 0).unwrap().and_utc() - chrono::Duration::minutes(i);
            format!(
                r#"{{"ts":"{}","ms_played":200000,"master_metadata_track_name":"Song {i}","master_metadata_album_artist_name":"{}","master_metadata_album_album_name":"Album","spotify_track_uri":null}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                artist_of(&user.spotify_id)
            )
        })
        .collect();
    let part = reqwest::multipart::Part::bytes(format!("[{}]", entries.join(",")).into_bytes())
        .file_name("Streaming_History_Audio_2026.json");
    let uploaded = browser
        .post(app.url("/import/upload"))
        .header("accept", "application/json")
        .header("origin", app.url(""))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let id = uploaded.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let staged = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM import_staging WHERE spotify_id = $1")
            .bind(&user.spotify_id)
            .fetch_one(&node)
            .await
            .unwrap()
    };
    common::wait_for(60, "the import waits to move its staged plays", || async {
        let status: String = sqlx::query_scalar("SELECT status FROM imports WHERE id = $1")
            .bind(id)
            .fetch_one(&app.state.stores.main)
            .await
            .unwrap();
        status == "storing" && staged().await == 5_000
    })
    .await;
    assert!(app.state.imports.running(id));

    let deleting = {
        let (url, browser) = (app.url("/account/delete"), browser.clone());
        tokio::spawn(async move {
            let response = browser
                .post(url)
                .form(&[("confirm", "delete")])
                .send()
                .await
                .expect("answer");
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    // The deletion stops the import first: its job ends, its staging and upload go.
    common::wait_for(
        30,
        "the import's job has stopped and its staging is gone",
        || async { !app.state.imports.running(id) && staged().await == 0 },
    )
    .await;
    holder.rollback().await.unwrap();
    let (status, text) = deleting.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        footprint(&app, &user).await,
        nothing(&before),
        "nothing of theirs, the import's plays and upload included"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_sweeper_removes_expired_sessions_and_abandoned_sign_ins_only() {
    let app = TestEnv::new().await.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    let pool = &app.state.stores.main;
    // Two abandoned sign-ins, one expired; an expired session beside the live one.
    for _ in 0..2 {
        app.get("/auth/demo").await;
    }
    sqlx::query(
        "UPDATE oauth_states SET expires_at = now() - interval '1 minute'
          WHERE state_hash = (SELECT state_hash FROM oauth_states LIMIT 1)",
    )
    .execute(pool)
    .await
    .expect("expire");
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, expires_at)
         VALUES (decode(repeat('ab', 32), 'hex'), $1, now() - interval '1 day')",
    )
    .bind(user.user_id)
    .execute(pool)
    .await
    .expect("insert");
    let swept = personalify::server::account::sweep(pool)
        .await
        .expect("sweep");
    assert_eq!(
        swept,
        personalify::server::account::Swept {
            sessions: 1,
            sign_ins: 1
        }
    );
    let (sessions, sign_ins): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM oauth_states)",
    )
    .fetch_one(pool)
    .await
    .expect("counts");
    assert_eq!((sessions, sign_ins), (1, 1), "the live ones stay");
    app.shutdown().await;
}
