//! The Listening panels: queried on `main` through the foreign table, their numbers equal
//! to a direct count on the analytics node, their filters and aggregates run remotely (the
//! plans' `Remote SQL`), and the page standing when the analytics node is down.

mod common;

use common::{TestApp, TestEnv};
use personalify::domain::TimeRange;
use personalify::server::listening::{self, NamedQuery, QUERIES};
use personalify::server::plays::{self, ingest, Play, Source};
use personalify::server::sync::SyncUser;
use std::time::Duration;

/// A signed-in, synced listener with the plays of `days` days (polled from the simulator
/// day by day, so a few weeks of listening).
async fn listener_with_plays(app: &TestApp, days: u32) -> (reqwest::Client, SyncUser) {
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    let sim = app.state.sim.as_ref().expect("demo mode");
    sim.freeze();
    // Start `days` back, then poll every 2 hours of the simulator's day up to now.
    sim.advance_days(-i64::from(days));
    ingest::poll_user(&app.state, &user).await.expect("poll");
    for _ in 0..days * 12 {
        sim.advance_by(Duration::from_secs(2 * 3600));
        ingest::poll_user(&app.state, &user).await.expect("poll");
    }
    (browser, user)
}

#[tokio::test]
async fn the_panels_equal_a_direct_count_on_the_analytics_node() {
    let app = TestEnv::new().await.spawn().await;
    let (_browser, user) = listener_with_plays(&app, 10).await;
    // A play from an export, with no track id and an artist main does not know.
    plays::store(
        &app.state.stores.analytics.pool,
        &user.spotify_id,
        &[Play {
            played_at: chrono::Utc::now() - chrono::Duration::days(2),
            track_id: None,
            track_name: "Field Recording".into(),
            artist_name: "Nobody Here".into(),
            artist_id: None,
            album_name: None,
            ms_played: 100 * 3_600_000,
            source: Source::Extended,
        }],
    )
    .await
    .unwrap();
    let analytics = &app.state.stores.analytics.pool;
    let view = listening::load(&app.state.stores, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .expect("the panels load");

    let (plays, ms, days): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(ms_played)::bigint, count(DISTINCT (played_at AT TIME ZONE 'UTC')::date)
           FROM plays WHERE spotify_id = $1",
    )
    .bind(&user.spotify_id)
    .fetch_one(analytics)
    .await
    .unwrap();
    assert!(plays > 300, "{plays} plays");
    assert_eq!(view.totals.plays, plays as u64);
    assert_eq!(view.totals.minutes, (ms / 60_000) as u64);
    assert_eq!(i64::from(view.totals.days_listened), days);
    assert!(view.totals.current_streak >= 10, "{:?}", view.totals);
    assert_eq!(
        view.days.iter().map(|d| i64::from(d.plays)).sum::<i64>(),
        plays,
        "every play is in a day of the last year"
    );

    // Top artist by minutes in the last 4 weeks, counted directly.
    let (artist, artist_ms): (String, i64) = sqlx::query_as(
        "SELECT artist_name, sum(ms_played)::bigint FROM plays
          WHERE spotify_id = $1 AND played_at >= now() - interval '28 days'
          GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
    )
    .bind(&user.spotify_id)
    .fetch_one(analytics)
    .await
    .unwrap();
    let first = &view.top_artists[0];
    assert_eq!(
        (first.name.as_str(), first.minutes),
        (artist.as_str(), (artist_ms / 60_000) as u32)
    );
    assert_eq!(first.name, "Nobody Here", "the 100-hour export play leads");
    assert_eq!(first.artist_id, None, "not in the person's lists: no link");
    assert!(
        view.top_artists
            .iter()
            .skip(1)
            .any(|a| a.artist_id.is_some()),
        "artists in the person's lists link to their pages: {:?}",
        view.top_artists
    );
    assert_eq!(view.top_tracks.len(), 10);
    assert_eq!(view.spotify_artists.len(), 10, "Spotify's own list beside");

    // The week grid adds up to the minutes of the window.
    let window_ms: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(ms_played), 0)::bigint FROM plays
          WHERE spotify_id = $1 AND played_at >= now() - interval '28 days'",
    )
    .bind(&user.spotify_id)
    .fetch_one(analytics)
    .await
    .unwrap();
    let grid: u64 = view.week.iter().flatten().map(|m| u64::from(*m)).sum();
    // Each of the (at most 168) cells rounds down by less than a minute.
    assert!(grid <= (window_ms / 60_000) as u64 && grid + 168 >= (window_ms / 60_000) as u64);
    app.shutdown().await;
}

/// The plan of `query` on main as the app runs it: prepared, with its parameters.
async fn plan(app: &TestApp, query: NamedQuery, args: &str) -> Vec<String> {
    let mut conn = app.state.stores.main.acquire().await.unwrap();
    sqlx::raw_sql(&format!("PREPARE panel AS {}", query.sql))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name));
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (VERBOSE, COSTS OFF) EXECUTE panel({args})"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", query.name));
    sqlx::raw_sql("DEALLOCATE panel")
        .execute(&mut *conn)
        .await
        .unwrap();
    plan
}

#[tokio::test]
async fn every_panel_query_filters_and_groups_on_the_analytics_node() {
    let app = TestEnv::new().await.spawn().await;
    let listener = "(spotify_id = 'demo-alex')";
    // Plays as in use (a few listeners, thousands of plays each in the window, dozens of
    // artists and tracks), and main's statistics of them, which the app keeps: what the
    // planner weighs to send a GROUP BY to the node. (For a listener with a few hundred
    // plays it may rightly group them on main: a few hundred rows cost less than its
    // estimate of a remote aggregate.)
    let node = &app.state.stores.analytics.pool;
    let now = chrono::Utc::now();
    for (n, who) in ["demo-alex", "demo-bo", "demo-cy", "demo-dee"]
        .iter()
        .enumerate()
    {
        let batch: Vec<Play> = (0..5000)
            .map(|i| {
                play(
                    now - chrono::Duration::minutes(i * 7 + n as i64),
                    &format!("t{}", i % 90),
                    &format!("Artist {}", i % 40),
                    120_000,
                )
            })
            .collect();
        plays::store(node, who, &batch).await.unwrap();
    }
    personalify::server::store::fdw::analyze(&app.state.stores.main)
        .await
        .unwrap();
    // (query, its arguments, remote scans, what each remote SQL must hold, grouped there)
    let cases: Vec<(NamedQuery, &str, usize, Vec<&str>, bool)> = vec![
        (
            listening::ZONE,
            "'demo-alex'",
            1,
            vec![listener, "listener_zones"],
            false,
        ),
        // Three reads of the rollups, the two counts aggregated remotely.
        (
            listening::TOTALS,
            "'demo-alex'",
            3,
            vec![listener, "plays_by_"],
            false,
        ),
        (
            listening::DAYS,
            "'demo-alex'",
            1,
            vec![listener, "plays_by_hour"],
            true,
        ),
        (
            listening::WEEK,
            "'demo-alex', '2026-11-01'",
            1,
            vec![listener, "(day >= '2026-11-01'"],
            true,
        ),
        (
            listening::TOP_ARTISTS,
            "'demo-alex', now() - interval '28 days', 10",
            1,
            vec![listener, "played_at >=", "public.plays"],
            true,
        ),
        (
            listening::TOP_TRACKS,
            "'demo-alex', now() - interval '28 days', 10",
            1,
            vec![listener, "played_at >=", "public.plays"],
            true,
        ),
        // Instance-wide: one row per listener from the rollup, never the plays, from
        // every partition.
        (
            listening::LISTENERS,
            "'demo-alex'",
            8,
            vec!["plays_by_listener"],
            false,
        ),
        (
            listening::ARTIST_DAYS,
            "'demo-alex', 'Band', 'Europe/Berlin'",
            1,
            vec![listener, "(artist_name = 'Band')"],
            true,
        ),
        (
            listening::ARTIST_LISTENERS,
            "'Band'",
            8,
            vec!["(artist_name = 'Band')", "plays_by_artist"],
            false,
        ),
    ];
    assert_eq!(
        cases
            .iter()
            .filter(|c| QUERIES.iter().any(|q| q.name == c.0.name))
            .count(),
        QUERIES.len(),
        "every panel query is checked"
    );
    for (query, args, scans, holds, grouped) in cases {
        let plan = plan(&app, query, args).await;
        let remote: Vec<&String> = plan
            .iter()
            .filter(|l| l.trim_start().starts_with("Remote SQL:"))
            .collect();
        assert_eq!(remote.len(), scans, "{}: {plan:#?}", query.name);
        for line in remote {
            for part in &holds {
                assert!(
                    line.contains(part),
                    "{}: {part} runs remotely: {line}",
                    query.name
                );
            }
            if grouped {
                assert!(
                    line.contains("GROUP BY"),
                    "{}: grouped remotely: {line}",
                    query.name
                );
            }
            if query.name == "totals" && !line.contains("plays_by_listener") {
                assert!(line.contains("count("), "totals: counted remotely: {line}");
            }
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_panels_say_so_when_the_analytics_node_is_down() {
    let (env, proxy) = TestEnv::new()
        .await
        .behind_proxy("ANALYTICS_DATABASE_URL")
        .await;
    let app = env.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&app.state.stores.remote)
        .await
        .unwrap();
    assert_eq!(
        timeout, "5s",
        "the server ends a panel's statement at its deadline"
    );
    proxy.take_down().await;
    let started = std::time::Instant::now();
    let err = listening::load(&app.state.stores, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .expect_err("the node is down");
    assert!(started.elapsed() < listening::DEADLINE + Duration::from_secs(1));
    assert!(
        matches!(err, listening::ListeningError::Database(_)),
        "{err}"
    );
    // A node that stops answering costs the deadline, not more.
    proxy.resume().await;
    proxy.pause();
    let started = std::time::Instant::now();
    // Main's own deadline, or postgres_fdw's connect_timeout (both 5 s) ends it.
    listening::load(&app.state.stores, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .expect_err("the node does not answer");
    assert!(started.elapsed() < listening::DEADLINE + Duration::from_secs(1));
    proxy.resume().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_listening_page_and_its_charts_show_the_plays() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = listener_with_plays(&app, 3).await;
    let view = listening::load(&app.state.stores, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .unwrap();
    let response = browser.get(app.url("/listening")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    for part in [
        "Your listening",
        "data-testid=\"listening-totals\"",
        "Minutes per day, last year",
        "When you listen: the last 4 weeks",
        "Top artists by minutes",
        "s top artists<!></h3>",
        "data-chart-src=\"/charts/listening/days\"",
        "data-chart-src=\"/charts/listening/week?range=short_term\"",
    ] {
        assert!(html.contains(part), "{part} not in the page");
    }
    assert!(
        html.contains(&format!("<dt>Plays</dt><dd>{}<!></dd>", view.totals.plays)),
        "the plays count is shown"
    );
    assert!(
        html.contains(&view.top_artists[0].name),
        "the top artist by minutes"
    );

    let days: serde_json::Value = browser
        .get(app.url("/charts/listening/days"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // ECharts' baseOption, with a media rule for narrow boxes.
    let days = &days["baseOption"];
    assert_eq!(days["series"][0]["type"], "heatmap");
    assert_eq!(days["series"][0]["coordinateSystem"], "calendar");
    let cells = days["series"][0]["data"].as_array().unwrap();
    assert_eq!(cells.len(), view.days.len());
    assert_eq!(days["calendar"]["range"][0], view.days_from.as_str());
    let week: serde_json::Value = browser
        .get(app.url("/charts/listening/week?range=short_term"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total: i64 = week["series"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[2].as_i64().unwrap())
        .sum();
    let grid: i64 = view.week.iter().flatten().map(|m| i64::from(*m)).sum();
    assert_eq!(total, grid);
    // Signed out: no chart.
    let anonymous = app
        .http
        .get(app.url("/charts/listening/days"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn the_calendars_figures_are_of_its_year_and_the_cards_of_all_time() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    // Noon UTC on days counted back from today: two recent days, and a run of 30 days
    // well over a year ago (the calendar starts at most 395 days back). Each day stays on
    // its side of the calendar's start whenever the test runs (even across midnight).
    let today = chrono::Utc::now().date_naive();
    let noon = |days_ago: i64| {
        (today - chrono::Duration::days(days_ago))
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
    };
    let mut stamped: Vec<Play> = (471..501)
        .map(|ago| play(noon(ago), "old", "Then", 200_000))
        .collect();
    stamped.extend([2, 3].map(|ago| play(noon(ago), "new", "Now", 200_000)));
    plays::store(&app.state.stores.analytics.pool, &user.spotify_id, &stamped)
        .await
        .unwrap();

    let view = listening::load(&app.state.stores, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .unwrap();
    assert_eq!(view.totals.days_listened, 32, "all time");
    assert_eq!(view.totals.longest_streak, 30, "all time");
    assert_eq!(view.days.len(), 2, "the calendar's year");
    assert_eq!(
        view.days_from,
        listening::calendar_from(today).to_string(),
        "the first of the month a year back"
    );
    // The chart's name says what it shows: both figures of that year.
    let html = app.page(&browser, "/listening").await;
    let label = "in that time, 2 days with plays and a longest run of 2 days in a row";
    let shown = html
        .find("aria-label=\"Minutes listened per day")
        .map(|at| html[at..].chars().take(160).collect::<String>());
    assert!(html.contains(label), "the days chart's label: {shown:?}");
    assert!(
        html.contains("<dt>Longest streak</dt><dd>30 days"),
        "the card"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn with_the_analytics_node_down_the_page_renders_and_says_so() {
    let (env, proxy) = TestEnv::new()
        .await
        .behind_proxy("ANALYTICS_DATABASE_URL")
        .await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    proxy.take_down().await;
    for path in ["/listening", "/dashboard", "/history"] {
        let response = browser.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("class=\"topbar\""), "{path} renders");
        if path == "/listening" {
            assert!(
                html.contains("data-testid=\"listening-unavailable\"")
                    && html.contains("analytics node is not answering"),
                "the panel says why"
            );
            assert!(html.contains("Back to the dashboard"));
        }
    }
    let chart = browser
        .get(app.url("/charts/listening/days"))
        .send()
        .await
        .unwrap();
    assert_eq!(chart.status(), 503);
    let zone = browser
        .post(app.url("/listening/time-zone"))
        .header("origin", app.url(""))
        .form(&[("time_zone", "Europe/Berlin")])
        .send()
        .await
        .unwrap();
    assert_eq!(zone.status(), 503);
    assert!(zone
        .text()
        .await
        .unwrap()
        .contains("analytics node is not answering"));
    proxy.resume().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_distributed_query_page_shows_each_query_its_result_and_its_remote_sql() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = listener_with_plays(&app, 2).await;
    let view = personalify::server::distributed::load(
        &app.state.stores,
        &app.state.instance_runs,
        &user.spotify_id,
    )
    .await
    .unwrap();
    assert_eq!(
        view.queries.len(),
        QUERIES.len() + 1,
        "and the instance-wide example"
    );
    let plays: i64 = sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
        .bind(&user.spotify_id)
        .fetch_one(&app.state.stores.analytics.pool)
        .await
        .unwrap();
    let totals = view.queries.iter().find(|q| q.name == "totals").unwrap();
    assert_eq!(
        totals.rows[0][0],
        plays.to_string(),
        "the result is the real count"
    );
    for q in &view.queries {
        assert!(q.error.is_none(), "{}: {:?}", q.name, q.error);
        let scans = match q.name.as_ref() {
            "totals" => 3,
            "listeners" | "instance" => 8,
            _ => 1,
        };
        // One node here: every part ran on analytics, and a listener's query on their one
        // partition.
        assert_eq!(q.ran_on.len(), 1, "{}: {:?}", q.name, q.ran_on);
        assert!(q.ran_on[0].starts_with("analytics: "), "{:?}", q.ran_on);
        assert_eq!(q.remote_sql().len(), scans, "{}: {:#?}", q.name, q.plan);
    }
    let part = personalify::server::shards::part_of(&app.state.stores.main, &user.spotify_id)
        .await
        .unwrap();
    assert_eq!(view.your_partition, Some(part));
    assert_eq!(view.placements.len(), 8);
    let days = view.queries.iter().find(|q| q.name == "days").unwrap();
    assert_eq!(
        days.ran_on,
        vec![format!("analytics: plays_by_hour_p{part}")]
    );
    let instance = view.queries.iter().find(|q| q.name == "instance").unwrap();
    assert_eq!(
        instance.rows[0],
        vec![
            "1".to_string(),
            plays.to_string(),
            instance.rows[0][2].clone()
        ]
    );
    let listeners = view.queries.iter().find(|q| q.name == "listeners").unwrap();
    assert_eq!(
        listeners.rows[0],
        vec!["1".to_string(), plays.to_string(), plays.to_string()]
    );
    assert!(view.server.iter().any(|(k, _)| k == "host"));
    assert!(
        !view.server.iter().any(|(k, _)| k.contains("password")),
        "no password on the page"
    );
    let tables: Vec<&str> = view.tables.iter().map(|t| t.name.as_str()).collect();
    for table in personalify::server::store::fdw::TABLES {
        assert!(
            tables.contains(&format!("analytics.{table}").as_str()),
            "{tables:?}"
        );
    }

    let response = browser.get(app.url("/distributed")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<mark>") && html.contains("Remote SQL: SELECT"),
        "highlighted"
    );
    for q in &view.queries {
        assert!(
            html.contains(&format!("data-testid=\"query-{}\"", q.name)),
            "{}",
            q.name
        );
    }
    assert!(!html.contains("personalify.fdw_password") && !html.contains("password="));
    app.shutdown().await;
}

#[tokio::test]
async fn with_the_analytics_node_down_the_distributed_page_still_shows_the_plans() {
    let (env, proxy) = TestEnv::new()
        .await
        .behind_proxy("ANALYTICS_DATABASE_URL")
        .await;
    let app = env.spawn().await;
    let (browser, _user) = app.signed_in(None).await;
    proxy.take_down().await;
    let response = browser.get(app.url("/distributed")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Remote SQL: SELECT"),
        "plans need no remote connection"
    );
    assert!(html.contains("could not run"), "each result says why");
    proxy.resume().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_artist_page_shows_your_plays_per_month_and_listeners_here() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = listener_with_plays(&app, 2).await;
    let (_other_browser, other) = app
        .signed_in(Some(
            personalify::server::sim::Simulator::demo_users()[1].id,
        ))
        .await;
    // The person's top artist by minutes, with a page (in their lists).
    let view = listening::load(&app.state.stores, &user.spotify_id, TimeRange::ShortTerm)
        .await
        .unwrap();
    let top = view
        .top_artists
        .iter()
        .find(|a| a.artist_id.is_some())
        .expect("an artist in the person's lists");
    let (plays, ms): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(ms_played)::bigint FROM plays WHERE spotify_id = $1 AND artist_name = $2",
    )
    .bind(&user.spotify_id)
    .bind(&top.name)
    .fetch_one(&app.state.stores.analytics.pool)
    .await
    .unwrap();
    // The other listener played them once (an export's play: name only).
    plays::store(
        &app.state.stores.analytics.pool,
        &other.spotify_id,
        &[Play {
            played_at: chrono::Utc::now() - chrono::Duration::days(3),
            track_id: None,
            track_name: "Some Song".into(),
            artist_name: top.name.clone(),
            artist_id: None,
            album_name: None,
            ms_played: 200_000,
            source: Source::Extended,
        }],
    )
    .await
    .unwrap();
    let panel = listening::artist_plays(&app.state.stores, &user.spotify_id, &top.name)
        .await
        .unwrap();
    assert_eq!(i64::from(panel.plays), plays);
    assert_eq!(i64::from(panel.minutes), ms / 60_000);
    assert_eq!(panel.listeners, 2, "both listeners here");
    assert_eq!(
        panel.months.iter().map(|m| i64::from(m.plays)).sum::<i64>(),
        plays
    );
    let id = top.artist_id.clone().unwrap();
    let html = app.page(&browser, &format!("/artist/{id}")).await;
    assert!(html.contains("data-testid=\"artist-plays-table\""));
    assert!(
        html.contains("2 of the 2 people on this server have played them."),
        "listeners here"
    );
    assert!(
        html.contains(&format!("{plays} time")),
        "the count of plays"
    );
    app.shutdown().await;
}

/// Each rollup's rows that differ from the same aggregate of `plays` computed directly.
async fn rollup_drift(analytics: &sqlx::PgPool) -> Vec<(&'static str, i64)> {
    plays::rollup_drift(analytics).await.unwrap()
}

fn no_drift(drift: &[(&str, i64)]) -> bool {
    drift.iter().all(|(_, n)| *n == 0)
}

fn play(at: chrono::DateTime<chrono::Utc>, track: &str, artist: &str, ms: i32) -> Play {
    Play {
        played_at: at,
        track_id: Some(track.into()),
        track_name: format!("Track {track}"),
        artist_name: artist.into(),
        artist_id: None,
        album_name: None,
        ms_played: ms,
        source: Source::Recent,
    }
}

#[tokio::test]
async fn the_rollups_equal_the_plays_through_inserts_deletes_updates_and_zone_changes() {
    let app = TestEnv::new().await.spawn().await;
    let analytics = &app.state.stores.analytics.pool;
    // 20:00 UTC three days ago: the 30 hourly plays span three UTC days
    // (4 + 24 + 2 hours) but only two in Kolkata (+5:30), whenever the test runs.
    let t0 = (chrono::Utc::now().date_naive() - chrono::Duration::days(3))
        .and_hms_opt(20, 0, 0)
        .unwrap()
        .and_utc();
    let hour = chrono::Duration::hours(1);
    // Two listeners; plays around midnight UTC, so a zone moves them across days.
    let ana: Vec<Play> = (0..30)
        .map(|i| {
            play(
                t0 + hour * i,
                &format!("t{}", i % 4),
                ["A", "B"][i as usize % 2],
                60_000 + i * 1000,
            )
        })
        .collect();
    plays::store(analytics, "ana", &ana).await.unwrap();
    plays::store(analytics, "ben", &ana[..5]).await.unwrap();
    // The same plays again: stored once, counted once.
    plays::store(analytics, "ana", &ana).await.unwrap();
    assert!(
        no_drift(&rollup_drift(analytics).await),
        "{:?}",
        rollup_drift(analytics).await
    );
    let (plays_n, ms): (i64, i64) =
        sqlx::query_as("SELECT plays, ms FROM plays_by_listener WHERE spotify_id = 'ana'")
            .fetch_one(analytics)
            .await
            .unwrap();
    assert_eq!(plays_n, 30);
    assert_eq!(ms, (0..30).map(|i| 60_000 + i * 1000).sum::<i64>());

    // A deletion, an update that moves plays to another artist and hour, an import.
    sqlx::query("DELETE FROM plays WHERE spotify_id = 'ana' AND track_key = 't0'")
        .execute(analytics)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE plays SET artist_name = 'C', played_at = played_at + interval '90 minutes'
          WHERE spotify_id = 'ana' AND track_key = 't1'",
    )
    .execute(analytics)
    .await
    .unwrap();
    personalify::server::plays::import::stage(
        analytics,
        77,
        "ana",
        &[play(t0 - hour, "t9", "D", 5_000)],
    )
    .await
    .unwrap();
    personalify::server::plays::import::finalize(analytics, 77)
        .await
        .unwrap();
    let drift = rollup_drift(analytics).await;
    assert!(no_drift(&drift), "{drift:?}");
    let artists: Vec<String> = sqlx::query_scalar(
        "SELECT artist_name FROM plays_by_artist WHERE spotify_id = 'ana' ORDER BY 1",
    )
    .fetch_all(analytics)
    .await
    .unwrap();
    assert_eq!(
        artists,
        ["A", "B", "C", "D"],
        "what no play counts in any more is gone"
    );

    // A zone 5.5 hours ahead: ana's days and hours are recounted, ben's stay in UTC.
    let ben_before: Vec<(chrono::NaiveDate, i16)> = sqlx::query_as(
        "SELECT day, hour FROM plays_by_hour WHERE spotify_id = 'ben' ORDER BY 1, 2",
    )
    .fetch_all(analytics)
    .await
    .unwrap();
    personalify::server::time_zone::set(analytics, "ana", "Asia/Kolkata")
        .await
        .unwrap();
    // A play written after the change counts in the new zone.
    plays::store(analytics, "ana", &[play(t0 + hour * 40, "t5", "A", 1_000)])
        .await
        .unwrap();
    let drift = rollup_drift(analytics).await;
    assert!(no_drift(&drift), "{drift:?}");
    let ben_after: Vec<(chrono::NaiveDate, i16)> = sqlx::query_as(
        "SELECT day, hour FROM plays_by_hour WHERE spotify_id = 'ben' ORDER BY 1, 2",
    )
    .fetch_all(analytics)
    .await
    .unwrap();
    assert_eq!(ben_before, ben_after);
    // The Listening page's days are Kolkata's: equal to a direct count in that zone.
    sqlx::query("INSERT INTO users (spotify_id, display_name) VALUES ('ana', 'Ana')")
        .execute(&app.state.stores.main)
        .await
        .unwrap();
    let view = listening::load(&app.state.stores, "ana", TimeRange::ShortTerm)
        .await
        .unwrap();
    assert_eq!(
        (view.time_zone.as_str(), view.zone_set),
        ("Asia/Kolkata", true)
    );
    let direct: Vec<(chrono::NaiveDate, i64)> = sqlx::query_as(
        "SELECT (played_at AT TIME ZONE 'Asia/Kolkata')::date, count(*) FROM plays
          WHERE spotify_id = 'ana' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(analytics)
    .await
    .unwrap();
    let shown: Vec<(String, u32)> = view.days.iter().map(|d| (d.day.clone(), d.plays)).collect();
    let direct: Vec<(String, u32)> = direct
        .into_iter()
        .map(|(d, n)| (d.to_string(), n as u32))
        .collect();
    assert_eq!(shown, direct);
    let utc_days: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT (played_at AT TIME ZONE 'UTC')::date) FROM plays WHERE spotify_id = 'ana'",
    )
    .fetch_one(analytics)
    .await
    .unwrap();
    assert_ne!(
        shown.len() as i64,
        utc_days,
        "the zone moved plays across midnight"
    );

    // An unknown zone changes nothing.
    let err = personalify::server::time_zone::set(analytics, "ana", "Mars/Olympus")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a time zone this server knows"),
        "{err}"
    );
    let zone: String =
        sqlx::query_scalar("SELECT time_zone FROM listener_zones WHERE spotify_id = 'ana'")
            .fetch_one(analytics)
            .await
            .unwrap();
    assert_eq!(zone, "Asia/Kolkata");

    // TRUNCATE empties the rollups with the plays.
    sqlx::query("TRUNCATE plays")
        .execute(analytics)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM plays_by_hour) + (SELECT count(*) FROM plays_by_track)
              + (SELECT count(*) FROM plays_by_artist) + (SELECT count(*) FROM plays_by_listener)",
    )
    .fetch_one(analytics)
    .await
    .unwrap();
    assert_eq!(left, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_listener_sets_their_time_zone_by_form_and_bad_names_are_refused() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    let post = |zone: &str, json: bool| {
        let mut request = browser
            .post(app.url("/listening/time-zone"))
            .header("origin", app.url(""))
            .form(&[("time_zone", zone)]);
        if json {
            request = request.header("accept", "application/json");
        }
        request.send()
    };
    let html = app.page(&browser, "/listening").await;
    assert!(html.contains("data-zone-set=\"false\""), "not chosen yet");
    assert!(html.contains("value=\"UTC\""));

    for (zone, says) in [
        ("Mars/Olympus", "not a time zone this server knows"),
        (
            "Europe/Berlin'; DROP TABLE plays; --",
            "not a time zone name",
        ),
        ("", "not a time zone name"),
    ] {
        let response = post(zone, false).await.unwrap();
        assert_eq!(response.status(), 400, "{zone}");
        let body = response.text().await.unwrap();
        assert!(body.contains(says), "{zone}: {body}");
    }
    let json = post("Nowhere/Land", true).await.unwrap();
    assert_eq!(json.status(), 400);
    let body: serde_json::Value = json.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Europe/Berlin"),
        "{body}"
    );
    let zones: i64 = sqlx::query_scalar("SELECT count(*) FROM listener_zones")
        .fetch_one(&app.state.stores.analytics.pool)
        .await
        .unwrap();
    assert_eq!(zones, 0, "nothing was saved");

    let response = post(" Asia/Tokyo ", true).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["time_zone"], "Asia/Tokyo");
    let html = app.page(&browser, "/listening").await;
    assert!(html.contains("data-zone-set=\"true\"") && html.contains("value=\"Asia/Tokyo\""));
    let zone = listening::zone(&app.state.stores.remote, &user.spotify_id)
        .await
        .unwrap();
    assert_eq!((zone.name.as_str(), zone.set), ("Asia/Tokyo", true));
    // Each change recounts every play of theirs: a few a minute, then a wait.
    let limit = personalify::server::time_zone::PER_WINDOW;
    for zone in ["Europe/Paris", "Europe/Rome", "Asia/Seoul", "Asia/Tokyo"]
        .iter()
        .take(limit - 1)
    {
        assert_eq!(post(zone, true).await.unwrap().status(), 200, "{zone}");
    }
    let again = post("America/New_York", false).await.unwrap();
    assert_eq!(again.status(), 429);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("several times in the last minute"));
    // Another listener, by form: redirected back to the page.
    let (other, _) = app
        .signed_in(Some(
            personalify::server::sim::Simulator::demo_users()[1].id,
        ))
        .await;
    let response = other
        .post(app.url("/listening/time-zone"))
        .header("origin", app.url(""))
        .form(&[("time_zone", "America/New_York")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(common::location(&response), "/listening");

    let anonymous = app
        .browser()
        .post(app.url("/listening/time-zone"))
        .header("origin", app.url(""))
        .form(&[("time_zone", "UTC")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.shutdown().await;
}

/// main's statistics follow the plays as they arrive: at the set-up the partitions were
/// empty (and are left unanalyzed, so the planner guesses rather than "knows" they are
/// empty), and once a listener's plays land, the refresh the app runs analyzes the
/// partition that grew, so the Totals' counts are made on the node (one row back) rather
/// than the rollup rows being shipped to main and counted there — the plan the
/// Distributed page shows.
#[tokio::test]
async fn main_statistics_follow_the_plays_so_the_totals_are_counted_on_the_node() {
    let app = TestEnv::new().await.spawn().await;
    let main = &app.state.stores.main;
    let part = personalify::server::shards::part_of(main, "demo-alex")
        .await
        .unwrap();
    let leaf = |table: &str| format!("{table}_p{part}");
    let reltuples = |name: String| async move {
        sqlx::query_scalar::<_, f32>(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'analytics' AND c.relname = $1",
        )
        .bind(name)
        .fetch_one(main)
        .await
        .unwrap()
    };
    assert_eq!(
        reltuples(leaf("plays_by_track")).await,
        -1.0,
        "empty at the set-up: not analyzed"
    );

    let node = &app.state.stores.analytics.pool;
    let now = chrono::Utc::now();
    let batch: Vec<Play> = (0..400)
        .map(|i| {
            play(
                now - chrono::Duration::minutes(i * 9),
                &format!("t{}", i % 60),
                &format!("Artist {}", i % 25),
                180_000,
            )
        })
        .collect();
    plays::store(node, "demo-alex", &batch).await.unwrap();
    // The node's counts (pg_stat_user_tables) follow within seconds; the app's task asks
    // every 30 s. Here: ask until the partition that grew is analyzed.
    let mut analyzed = Vec::new();
    for _ in 0..40 {
        analyzed.extend(
            personalify::server::store::fdw::refresh_statistics(
                main,
                &app.state.stores.analytics.links(),
            )
            .await
            .unwrap(),
        );
        if analyzed.contains(&leaf("plays_by_track")) && analyzed.contains(&leaf("plays")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(analyzed.contains(&leaf("plays_by_track")), "{analyzed:?}");
    assert!(analyzed.contains(&leaf("plays")), "{analyzed:?}");
    assert!(
        analyzed.iter().all(|l| l.ends_with(&format!("_p{part}"))),
        "only the partition that grew: {analyzed:?}"
    );
    assert_eq!(reltuples(leaf("plays_by_track")).await, 60.0);
    assert_eq!(reltuples(leaf("plays")).await, 400.0);
    // Nothing changed since: nothing to analyze.
    let again = personalify::server::store::fdw::refresh_statistics(
        main,
        &app.state.stores.analytics.links(),
    )
    .await
    .unwrap();
    assert!(again.is_empty(), "{again:?}");

    let plan = plan(&app, listening::TOTALS, "'demo-alex'").await;
    let counted: Vec<&String> = plan
        .iter()
        .filter(|l| l.contains("Remote SQL:") && l.contains("plays_by_track"))
        .collect();
    assert_eq!(counted.len(), 1, "{plan:#?}");
    assert!(counted[0].contains("SELECT count(*)"), "{plan:#?}");
    app.shutdown().await;
}

/// Thirty listeners change their zone at once while their plays are being counted (each
/// one's zone lock held on the node): the changes wait on the node, never holding a
/// transaction (and a connection) of main's, and only a few run at once; another
/// listener's pages are served meanwhile, panels and all.
#[tokio::test]
async fn thirty_zone_changes_at_once_leave_other_listeners_pages_alone() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    let stores = &app.state.stores;
    let ids: Vec<String> = (0..30).map(|i| format!("zone-{i}")).collect();
    let mut writing = stores.analytics.pool.begin().await.unwrap();
    for id in &ids {
        sqlx::query(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended('plays-zone:' || $1, 0))",
        )
        .bind(id)
        .execute(&mut *writing)
        .await
        .unwrap();
    }
    let changes: Vec<_> = ids
        .iter()
        .map(|id| {
            let (state, id) = (app.state.clone(), id.clone());
            tokio::spawn(async move {
                personalify::server::time_zone::set_routed(&state, &id, "Europe/Berlin").await
            })
        })
        .collect();
    let waiting_on_node = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&stores.analytics.pool)
        .await
        .unwrap_or(0)
    };
    common::wait_for(
        10,
        "the changes whose turn it is wait on the node",
        || async { waiting_on_node().await == personalify::server::time_zone::AT_ONCE as i64 },
    )
    .await;
    let open_on_main: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&stores.main)
    .await
    .unwrap();
    assert_eq!(
        open_on_main, 0,
        "no change waits holding main's transaction"
    );
    for path in ["/dashboard", "/history", "/listening"] {
        let response = browser.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        for panel in ["listening", "instance", "trending"] {
            assert!(
                !html.contains(&format!("data-testid=\"{panel}-unavailable\"")),
                "{path}: the {panel} panel is unavailable"
            );
        }
    }
    assert_eq!(
        waiting_on_node().await,
        personalify::server::time_zone::AT_ONCE as i64,
        "still waiting: the pages were served meanwhile"
    );
    writing.rollback().await.unwrap();
    let mut made = 0;
    for change in changes {
        match change.await.unwrap() {
            Ok(_) => made += 1,
            Err(personalify::server::time_zone::ZoneError::Busy) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(made >= personalify::server::time_zone::AT_ONCE, "{made}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM listener_zones WHERE spotify_id LIKE 'zone-%' AND time_zone = 'Europe/Berlin'",
    )
    .fetch_one(&stores.analytics.pool)
    .await
    .unwrap();
    assert_eq!(stored, made as i64, "every change made is stored");
    app.shutdown().await;
}
