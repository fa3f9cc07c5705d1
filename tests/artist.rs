//! The artist page against the real stores: PostgreSQL metadata and ranks, MongoDB rank
//! history, the Redis view counter, cross-user figures; 404s for artists outside the
//! person's lists; MongoDB and Redis being down degrade panels, not the page.

mod common;

use common::{chart_options, TestApp, TestEnv};
use fred::interfaces::KeysInterface;
use personalify::server::sync::SyncUser;

/// The artist at `rank` in a user's 4-week top artists: (id, name).
async fn artist_at(app: &TestApp, spotify_id: &str, rank: i16) -> (String, String) {
    sqlx::query_as(
        "SELECT a.id, a.name FROM user_artists ua JOIN artists a ON a.id = ua.artist_id
          WHERE ua.spotify_id = $1 AND ua.time_range = 'short_term' AND ua.rank = $2",
    )
    .bind(spotify_id)
    .bind(rank)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("a synced list")
}

async fn views_key(app: &TestApp, artist_id: &str) -> Option<i64> {
    let cache = &app.state.stores.cache;
    cache
        .client
        .get(format!("{}artist:views:{artist_id}", cache.prefix))
        .await
        .expect("redis answers")
}

/// HTML with the `<!-- -->` hydration markers Leptos puts between text nodes removed.
fn text(html: &str) -> String {
    html.replace("<!---->", "").replace("<!>", "")
}

#[tokio::test]
async fn the_artist_page_gathers_every_store() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    app.sim().advance_days(1);
    app.sync(&user).await;
    let (id, name) = artist_at(&app, &user.spotify_id, 1).await;

    let response = browser
        .get(app.url(&format!("/artist/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = text(&response.text().await.unwrap());
    assert!(
        page.contains(&format!("data-testid=\"artist-name\">{name}<")),
        "name from PostgreSQL"
    );
    assert!(page.contains("Your rank, 4 weeks"));
    assert!(page.contains(">#1<"), "rank 1 in 4 weeks");
    // Rank history from MongoDB: two syncs, a column each, and a chart.
    let table = page
        .split("data-testid=\"artist-rank-table\"")
        .nth(1)
        .expect("rank table")
        .split("</thead>")
        .next()
        .unwrap();
    assert_eq!(table.matches("<time").count(), 2, "{table}");
    let charts = chart_options(&app, &browser, &page).await;
    assert_eq!(charts.len(), 1, "one chart");
    let (testid, option) = &charts[0];
    assert_eq!(testid, "artist-rank-chart");
    let series = option["series"].as_array().unwrap();
    let short = series
        .iter()
        .find(|s| s["name"] == "4 weeks")
        .expect("a 4-week line");
    assert_eq!(
        short["data"].as_array().unwrap().last().unwrap(),
        1,
        "rank 1 at the latest sync"
    );
    // The person's top tracks by the artist, all of them from PostgreSQL.
    let track_count: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT ut.track_id) FROM user_tracks ut
           JOIN track_artists ta ON ta.track_id = ut.track_id
          WHERE ut.spotify_id = $1 AND ta.artist_id = $2",
    )
    .bind(&user.spotify_id)
    .bind(&id)
    .fetch_one(&app.state.stores.main)
    .await
    .unwrap();
    if track_count > 0 {
        let list = page.split("data-testid=\"artist-tracks\"").nth(1).unwrap();
        let list = list.split("</ol>").next().unwrap();
        assert_eq!(list.matches("<li").count() as i64, track_count);
    }
    // Cross-user figures and the Redis counter.
    assert!(page.contains("You are the only person on this server so far."));
    assert!(page.contains("opened 1 time on this server"), "first view");
    assert_eq!(views_key(&app, &id).await, Some(1));
    let again = text(&app.page(&browser, &format!("/artist/{id}")).await);
    assert!(again.contains("opened 2 times on this server"));
    assert_eq!(views_key(&app, &id).await, Some(2));
    // Plays come from the analytics node: none polled in this test.
    assert!(page.contains("No plays of"), "the plays panel");
    assert!(page.contains("Nobody on this server has played them yet."));

    // The dashboard links to it.
    let dashboard = app.page(&browser, "/dashboard?range=short_term").await;
    assert!(dashboard.contains(&format!("href=\"/artist/{id}\"")));
    app.shutdown().await;
}

#[tokio::test]
async fn artists_outside_your_lists_are_a_friendly_404() {
    let app = TestEnv::new().await.spawn().await;
    let (alex, alex_user) = app.signed_in(None).await;
    app.sync(&alex_user).await;
    let (sari, sari_user): (reqwest::Client, SyncUser) = app.signed_in(Some("demo-sari")).await;
    app.sync(&sari_user).await;

    // An artist in Alex's lists and nowhere in Sari's.
    let only_alex: String = sqlx::query_scalar(
        "SELECT ua.artist_id FROM user_artists ua
          WHERE ua.spotify_id = $1
            AND NOT EXISTS (SELECT 1 FROM user_artists o
                             WHERE o.spotify_id = $2 AND o.artist_id = ua.artist_id)
            AND NOT EXISTS (SELECT 1 FROM user_tracks ut JOIN track_artists ta ON ta.track_id = ut.track_id
                             WHERE ut.spotify_id = $2 AND ta.artist_id = ua.artist_id)
          ORDER BY ua.rank LIMIT 1",
    )
    .bind(&alex_user.spotify_id)
    .bind(&sari_user.spotify_id)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("the demo listeners' tastes differ");

    let path = format!("/artist/{only_alex}");
    let as_alex = alex.get(app.url(&path)).send().await.unwrap();
    assert_eq!(as_alex.status(), 200);
    let as_sari = sari.get(app.url(&path)).send().await.unwrap();
    assert_eq!(as_sari.status(), 404, "another person's artist");
    let body = text(&as_sari.text().await.unwrap());
    assert!(body.contains("Artist not found"));
    assert!(body.contains("not in your top artists or top tracks"));
    assert_eq!(
        views_key(&app, &only_alex).await,
        Some(1),
        "only Alex's view counted"
    );

    for bad in [
        "/artist/0000000000000000000000",
        "/artist/not%20an%20id",
        "/artist/%27%3B%20DROP%20TABLE%20artists%3B--",
        &format!("/artist/{}", "x".repeat(300)),
    ] {
        let response = alex.get(app.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{bad}");
        assert!(text(&response.text().await.unwrap()).contains("Artist not found"));
    }
    let artists: i64 = sqlx::query_scalar("SELECT count(*) FROM artists")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert!(artists > 0, "nothing dropped");

    // Signed out: asked to sign in, nothing counted.
    let stranger = app.browser();
    let page = text(&app.page(&stranger, &path).await);
    assert!(page.contains("You're not signed in"));
    assert_eq!(views_key(&app, &only_alex).await, Some(1));
    app.shutdown().await;
}

#[tokio::test]
async fn mongo_and_redis_down_leave_the_artist_page_standing() {
    let env = TestEnv::new()
        .await
        .store_down("MONGODB_URL")
        .store_down("REDIS_URL");
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    let (id, name) = artist_at(&app, &user.spotify_id, 2).await;
    let response = browser
        .get(app.url(&format!("/artist/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = text(&response.text().await.unwrap());
    assert!(page.contains(&name));
    assert!(page.contains(">#2<"), "rank from PostgreSQL");
    assert!(page.contains("data-testid=\"artist-history-unavailable\""));
    assert!(page.contains("data-testid=\"artist-views-unavailable\""));
    assert!(chart_options(&app, &browser, &page).await.is_empty());
    app.shutdown().await;
}
