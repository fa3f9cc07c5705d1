//! `/healthz`, `/readyz` and start-up against the real stores, including stores that are down.

mod common;

use common::TestEnv;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn healthz_says_ok() {
    let app = TestEnv::new().await.spawn().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_reports_each_store_ok_with_its_latency() {
    let app = TestEnv::new().await.spawn().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["down"], serde_json::json!([]));
    for store in ["main", "analytics", "mongo", "redis"] {
        assert_eq!(body["stores"][store]["status"], "ok", "{store}: {body}");
        let latency = body["stores"][store]["latency_ms"].as_f64().unwrap();
        assert!(
            (0.0..2000.0).contains(&latency),
            "{store} latency {latency}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn start_up_applies_migrations_on_both_nodes() {
    let env = TestEnv::new().await;
    let app = env.clone().spawn().await;

    let mut main = PgConnection::connect(env.main_url()).await.unwrap();
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position",
    )
    .fetch_all(&mut main)
    .await
    .unwrap();
    assert_eq!(users[..3], ["id", "spotify_id", "display_name"]);
    // Constraints hold: an empty spotify id is rejected by the database itself.
    let empty = sqlx::query("INSERT INTO users (spotify_id) VALUES ('')")
        .execute(&mut main)
        .await;
    assert!(empty.is_err());

    let mut analytics = PgConnection::connect(env.analytics_url()).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut analytics)
        .await
        .unwrap();
    assert_eq!(
        applied,
        personalify::server::store::pg::ANALYTICS_MIGRATIONS
            .iter()
            .count() as i64
    );
    let plays: Option<String> = sqlx::query_scalar("SELECT to_regclass('plays')::text")
        .fetch_one(&mut analytics)
        .await
        .unwrap();
    assert_eq!(plays.as_deref(), Some("plays"));
    // The main node's tables are not on the analytics node, and vice versa.
    let users_there: Option<String> = sqlx::query_scalar("SELECT to_regclass('users')::text")
        .fetch_one(&mut analytics)
        .await
        .unwrap();
    assert_eq!(users_there, None);

    // A second start on the same databases is a no-op for migrations.
    let env = app.stop().await;
    let again = env.spawn().await;
    assert_eq!(again.get("/readyz").await.status(), 200);
    again.shutdown().await;
}

#[tokio::test]
async fn redis_down_makes_readyz_503_naming_redis_while_pages_still_render() {
    let env = TestEnv::new().await.store_down("REDIS_URL");
    let app = env.spawn().await;

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["down"], serde_json::json!(["redis"]));
    assert_eq!(body["stores"]["redis"]["status"], "down");
    // Names and states only: the driver's message (addresses, ports) stays in the log.
    assert!(body["stores"]["redis"].get("error").is_none(), "{body}");
    let text = body.to_string();
    let port = app.env.vars["REDIS_URL"]
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert!(!text.contains(&port), "no address in /readyz: {text}");
    assert_eq!(body["stores"]["main"]["status"], "ok");

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Try the demo"));
    app.shutdown().await;
}

#[tokio::test]
async fn mongo_and_analytics_down_at_start_up_are_reported_not_fatal() {
    let env = TestEnv::new()
        .await
        .store_down("MONGODB_URL")
        .store_down("ANALYTICS_DATABASE_URL");
    let app = env.spawn().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["down"], serde_json::json!(["analytics", "mongo"]));
    assert_eq!(body["stores"]["redis"]["status"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn start_up_fails_with_a_clear_error_when_main_is_unreachable() {
    let env = TestEnv::new().await.store_down("DATABASE_URL");
    let started = std::time::Instant::now();
    let err = match personalify::server::startup::Application::build(env.config().unwrap()).await {
        Ok(_) => panic!("start-up should fail without the main database"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.starts_with("PostgreSQL main (DATABASE_URL) is not reachable"),
        "{err}"
    );
    assert!(
        !err.contains("personalify:personalify"),
        "password leaked: {err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn landing_page_is_server_rendered_with_both_ways_in() {
    let app = TestEnv::new().await.spawn().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    for text in [
        "Your listening, on your own server",
        "Log in with Spotify",
        "Try the demo",
        "Demo mode.",
        "Nova Lights", // the preview's first sample list, rendered on the server
        "/pkg/personalify.js",
    ] {
        assert!(html.contains(text), "missing {text:?}");
    }
    assert!(html.contains(r#"data-hydrated="false""#));
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_a_friendly_404_page() {
    let app = TestEnv::new().await.spawn().await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(html.contains("This page doesn"), "{html}");
    assert!(html.contains("Go to the start page"));
    app.shutdown().await;
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let app = TestEnv::new().await.spawn().await;
    let res = app
        .http
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    app.shutdown().await;
}
