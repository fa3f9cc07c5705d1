//! Your data is yours: the export holds everything about the person and no secret; deleting
//! the account removes them from PostgreSQL (main and analytics), MongoDB and Redis, ends
//! the session, and leaves everyone else untouched; expired sessions and abandoned
//! sign-ins are swept.

mod common;

use common::{TestApp, TestEnv};
use mongodb::bson::{doc, Document};
use personalify::server::store::mongo::{HISTORY, USER_SYNCS};
use personalify::server::sync::SyncUser;

/// Rows, documents and keys that mention one user, store by store.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    main: Vec<(String, i64)>,
    analytics: i64,
    mongo: u64,
    redis: usize,
}

async fn footprint(app: &TestApp, user: &SyncUser) -> Footprint {
    let pool = &app.state.stores.main;
    let mut main = Vec::new();
    for (table, column, by_id) in [
        ("users", "id", true),
        ("spotify_tokens", "user_id", true),
        ("sessions", "user_id", true),
        ("sync_runs", "user_id", true),
        ("user_artists", "spotify_id", false),
        ("user_tracks", "spotify_id", false),
        ("top_payloads", "spotify_id", false),
    ] {
        let query = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
        let n: i64 = if by_id {
            sqlx::query_scalar(&query).bind(user.user_id)
        } else {
            sqlx::query_scalar(&query).bind(&user.spotify_id)
        }
        .fetch_one(pool)
        .await
        .expect("count");
        main.push((table.to_string(), n));
    }
    let outbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mongo_outbox WHERE payload->>'spotify_id' = $1")
            .bind(&user.spotify_id)
            .fetch_one(pool)
            .await
            .expect("count");
    main.push(("mongo_outbox".into(), outbox));
    let analytics: i64 = sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
        .bind(&user.spotify_id)
        .fetch_one(&app.state.stores.analytics.pool)
        .await
        .expect("count");
    let db = &app.state.stores.mongo.db;
    let mut mongo = 0;
    for collection in [HISTORY, USER_SYNCS] {
        mongo += db
            .collection::<Document>(collection)
            .count_documents(doc! { "spotify_id": &user.spotify_id })
            .await
            .expect("count");
    }
    let cache = &app.state.stores.cache;
    let keys: Vec<String> = {
        use fred::prelude::*;
        let pattern = format!("{}*{}*", cache.prefix, user.spotify_id);
        // Redis down: nothing can be counted there (the test that needs the keys checks
        // they were there before).
        let scanned: Result<(String, Vec<String>), _> = cache
            .client
            .scan_page("0", pattern, Some(10_000), None)
            .await;
        scanned.map(|(_, keys)| keys).unwrap_or_default()
    };
    Footprint {
        main,
        analytics,
        mongo,
        redis: keys.len(),
    }
}

async fn add_plays(app: &TestApp, spotify_id: &str, n: i32) {
    sqlx::query(
        "INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name, artist_name,
                            ms_played, source)
         SELECT $1, now() - make_interval(mins => g), 't' || g, 't' || g, 'Track ' || g,
                'Artist', 180000, 'recent'
           FROM generate_series(1, $2) g",
    )
    .bind(spotify_id)
    .bind(n)
    .execute(&app.state.stores.analytics.pool)
    .await
    .expect("plays");
}

#[tokio::test]
async fn export_holds_everything_and_delete_removes_the_user_from_every_store() {
    let app = TestEnv::new().await.spawn().await;
    let demos = personalify::server::sim::Simulator::demo_users();
    let (alex_browser, alex) = app.signed_in(Some(demos[0].id)).await;
    let (_sari_browser, sari) = app.signed_in(Some(demos[1].id)).await;
    for user in [&alex, &sari] {
        for _ in 0..2 {
            app.sync(user).await;
        }
        add_plays(&app, &user.spotify_id, 5).await;
    }
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
    assert!(
        before_alex.mongo >= 6 && before_alex.redis >= 3,
        "{before_alex:?}"
    );
    assert_eq!(before_alex.analytics, 5);

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
    assert_eq!(data["syncs"].as_array().map(Vec::len), Some(2));
    assert_eq!(data["top_lists"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        data["history"].as_array().map(Vec::len),
        Some(6),
        "3 ranges × 2 syncs"
    );
    assert_eq!(data["plays"].as_array().map(Vec::len), Some(5));
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

    let after = footprint(&app, &alex).await;
    assert_eq!(
        after,
        Footprint {
            main: before_alex
                .main
                .iter()
                .map(|(t, _)| (t.clone(), 0))
                .collect(),
            analytics: 0,
            mongo: 0,
            redis: 0,
        },
        "nothing of alex remains anywhere"
    );
    assert_eq!(
        footprint(&app, &sari).await,
        before_sari,
        "sari is untouched"
    );
    assert!(app.state.pages.is_empty(), "alex's kept pages are gone");
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
async fn with_a_store_down_nothing_is_deleted_and_the_page_says_so() {
    let app = TestEnv::new().await.store_down("REDIS_URL").spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    let before = footprint(&app, &user).await;
    let response = browser
        .post(app.url("/account/delete"))
        .form(&[("confirm", "delete")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 503);
    let text = response.text().await.expect("body");
    assert!(text.contains("The cache (Redis) does not answer"), "{text}");
    assert!(text.contains("Nothing was changed"));
    assert_eq!(footprint(&app, &user).await, before);
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
