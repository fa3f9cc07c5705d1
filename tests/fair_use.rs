//! Fair use of Spotify and of the server: a cooldown between a user's syncs, "synced but
//! empty" told apart from "never synced" (and a page view that does not start a sync every
//! time), one budget of Spotify calls per minute for the whole instance (Redis up or down),
//! the scheduler backing off per user, and per-client limits on sign-in starts and /readyz.

mod common;

use common::{TestApp, TestEnv};
use personalify::domain::SyncStatus;
use personalify::server::sim::Simulator;
use personalify::server::sync::{SyncError, Trigger};
use std::time::Duration;

async fn runs(app: &TestApp, user_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&app.state.stores.main)
        .await
        .expect("count")
}

/// Wait (up to 10 s) until no sync of `user_id` runs in the app.
async fn wait_until_idle(app: &TestApp, user_id: i64) {
    for _ in 0..100 {
        if app.state.syncs.progress(user_id).await.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn top(browser: &reqwest::Client, app: &TestApp, range: &str) -> serde_json::Value {
    let response = browser
        .post(app.url("/api/top"))
        .form(&[("range", range)])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_manual_sync_within_the_cooldown_is_refused_with_the_time_left() {
    let app = TestEnv::new()
        .await
        .set("SYNC_COOLDOWN_SECS", "300")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    let now = chrono::Utc::now().timestamp();
    let first = browser
        .post(app.url("/api/sync"))
        .send()
        .await
        .expect("answer");
    assert_eq!(first.status(), 200, "the first sync starts");
    let progress: serde_json::Value = first.json().await.expect("json");
    // Asking while it runs joins it: not refused.
    let again = browser
        .post(app.url("/api/sync"))
        .send()
        .await
        .expect("answer");
    if again.status() == 200 {
        let joined: serde_json::Value = again.json().await.expect("json");
        assert_eq!(joined["run_id"], progress["run_id"]);
    }
    // Wait for it to end.
    wait_until_idle(&app, user.user_id).await;
    let refused = browser
        .post(app.url("/api/sync"))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((290..=300).contains(&retry_after), "{retry_after}");
    let text = refused.text().await.expect("body");
    assert!(
        text.contains("You can sync again in 5 min"),
        "a message a person understands: {text}"
    );
    assert_eq!(runs(&app, user.user_id).await, 1, "no second sync");
    // The dashboard's data says when the button comes back.
    let view = top(&browser, &app, "short_term").await;
    assert_eq!(view["cooldown_secs"], 300);
    let next = view["next_sync_at"].as_i64().expect("a time");
    assert!((now + 290..=now + 302).contains(&next), "{next} vs {now}");

    // A failed sync does not start the cooldown: the user may retry at once.
    sqlx::query("UPDATE sync_runs SET status = 'failed', error = 'x' WHERE user_id = $1")
        .bind(user.user_id)
        .execute(&app.state.stores.main)
        .await
        .expect("update");
    let retry = browser
        .post(app.url("/api/sync"))
        .send()
        .await
        .expect("answer");
    assert_eq!(retry.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn synced_but_empty_is_not_never_synced_and_page_views_start_no_syncs() {
    let app = TestEnv::new()
        .await
        .set("SYNC_COOLDOWN_SECS", "300")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    app.sim().set_new_listener(&user.spotify_id, true);
    assert_eq!(app.sync(&user).await.status, SyncStatus::Succeeded);
    for _ in 0..3 {
        let html = app.page(&browser, "/dashboard?range=short_term").await;
        assert!(
            html.contains("data-testid=\"synced-empty\""),
            "the empty state"
        );
        assert!(!html.contains("data-testid=\"never-synced\""));
        let view = top(&browser, &app, "short_term").await;
        assert_eq!(view["ever_synced"], true);
        assert!(view["sync"].is_null(), "no sync started: {view}");
    }
    assert_eq!(runs(&app, user.user_id).await, 1, "views started no sync");
    // The other ranges have lists.
    let html = app.page(&browser, "/dashboard?range=long_term").await;
    assert!(html.contains("data-testid=\"top-artists\""));
    app.shutdown().await;
}

#[tokio::test]
async fn a_first_visit_starts_one_sync_not_one_per_view() {
    let app = TestEnv::new()
        .await
        .set("SYNC_COOLDOWN_SECS", "300")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    // Spotify fails every list: the first visit's sync fails.
    app.sim().fail_next_on("/v1/me/top", 500, 10_000);
    let html = app.page(&browser, "/dashboard").await;
    let lists = html
        .find("class=\"lists")
        .map_or(html.as_str(), |at| &html[at..]);
    assert!(
        html.contains("data-testid=\"never-synced\""),
        "{:.1500}",
        lists
    );
    wait_until_idle(&app, user.user_id).await;
    assert_eq!(runs(&app, user.user_id).await, 1);
    for _ in 0..3 {
        app.page(&browser, "/dashboard").await;
    }
    assert_eq!(
        runs(&app, user.user_id).await,
        1,
        "views within the cooldown start no new sync"
    );
    app.sim().clear_faults();
    app.shutdown().await;
}

/// Two demo listeners sync within the budget of 24 calls (12 each); the third is refused
/// until the next minute, whichever way it asks.
async fn budget_is_shared(app: &TestApp) {
    let demos = Simulator::demo_users();
    let mut users = Vec::new();
    for demo in &demos[..3] {
        users.push(app.signed_in(Some(demo.id)).await);
    }
    // Stay inside one minute of the window.
    let into_minute = chrono::Utc::now().timestamp() % 60;
    if into_minute > 50 {
        tokio::time::sleep(Duration::from_secs(61 - into_minute as u64)).await;
    }
    for (_, user) in &users[..2] {
        assert_eq!(app.sync(user).await.status, SyncStatus::Succeeded);
    }
    let third = app
        .state
        .syncs
        .start(&app.state, users[2].1.clone(), Trigger::Schedule)
        .await;
    assert!(
        matches!(third, Err(SyncError::BudgetSpent(_))),
        "the budget is spent"
    );
    let response = users[2]
        .0
        .post(app.url("/api/sync"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let text = response.text().await.expect("body");
    assert!(text.contains("used its share of Spotify"), "{text}");
    assert_eq!(runs(app, users[2].1.user_id).await, 0);
}

#[tokio::test]
async fn one_spotify_budget_for_every_user() {
    let app = TestEnv::new()
        .await
        .set("SPOTIFY_CALLS_PER_MINUTE", "24")
        .spawn()
        .await;
    budget_is_shared(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn with_redis_down_the_budget_is_kept_in_the_process() {
    let app = TestEnv::new()
        .await
        .store_down("REDIS_URL")
        .set("SPOTIFY_CALLS_PER_MINUTE", "24")
        .spawn()
        .await;
    budget_is_shared(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_scheduler_backs_off_a_user_whose_syncs_keep_failing() {
    use personalify::server::sync::schedule::due_users;
    let app = TestEnv::new()
        .await
        .set("SYNC_CHECK_SECS", "60")
        .spawn()
        .await;
    let (_browser, user) = app.signed_in(None).await;
    let due = || async {
        due_users(&app.state)
            .await
            .expect("due users")
            .iter()
            .any(|u| u.user_id == user.user_id)
    };
    assert!(due().await, "never synced: due");
    let pool = &app.state.stores.main;
    // Three failures in a row, the last 3 minutes ago: the next try waits 60 s × 2² = 4 min.
    for minutes_ago in [30, 10, 3] {
        sqlx::query(
            "INSERT INTO sync_runs (user_id, trigger, status, started_at, finished_at, error)
             VALUES ($1, 'schedule', 'failed', now() - make_interval(mins => $2),
                     now() - make_interval(mins => $2), 'Spotify is having trouble')",
        )
        .bind(user.user_id)
        .bind(minutes_ago)
        .execute(pool)
        .await
        .expect("insert");
    }
    assert!(!due().await, "backing off after 3 failures");
    sqlx::query(
        "UPDATE sync_runs SET started_at = started_at - interval '2 minutes',
                finished_at = finished_at - interval '2 minutes' WHERE user_id = $1",
    )
    .bind(user.user_id)
    .execute(pool)
    .await
    .expect("update");
    assert!(due().await, "5 minutes after the last failure: due again");
    // A success ends the streak: one failure after it waits only 60 s.
    assert_eq!(app.sync(&user).await.status, SyncStatus::Succeeded);
    sqlx::query("UPDATE sync_runs SET started_at = now() - interval '3 days', finished_at = now() - interval '3 days' WHERE status = 'succeeded'")
        .execute(pool)
        .await
        .expect("update");
    sqlx::query(
        "INSERT INTO sync_runs (user_id, trigger, status, started_at, finished_at, error)
         VALUES ($1, 'schedule', 'failed', now() - interval '2 minutes', now() - interval '2 minutes', 'x')",
    )
    .bind(user.user_id)
    .execute(pool)
    .await
    .expect("insert");
    assert!(due().await, "one failure, 2 minutes ago: due");
    app.shutdown().await;
}

#[tokio::test]
async fn sign_in_starts_and_readiness_checks_are_limited_per_client() {
    let app = TestEnv::new()
        .await
        .set("SIGN_IN_RATE_PER_MINUTE", "3")
        .set("READYZ_RATE_PER_MINUTE", "2")
        .spawn()
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/auth/demo").await.status(), 303);
    }
    let limited = app.get("/auth/login").await;
    assert_eq!(limited.status(), 429, "login and demo share the limit");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    let text = limited.text().await.expect("body");
    assert!(text.contains("Too many sign-in attempts"), "{text}");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM oauth_states")
        .fetch_one(&app.state.stores.main)
        .await
        .expect("count");
    assert_eq!(pending, 3, "a refused request stored no sign-in");

    for _ in 0..2 {
        assert_ne!(app.get("/readyz").await.status(), 429);
    }
    assert_eq!(app.get("/readyz").await.status(), 429);
    // Other routes are not limited.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.shutdown().await;
}
