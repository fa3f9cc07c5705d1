//! `main`'s postgres_fdw link to the analytics node, set up by the app: created at
//! start-up, unchanged by a second run, corrected when the host, port or password
//! changes, a changed or new remote table (re)imported, and the password kept out of the
//! server's statement log. Real clusters on loopback.

mod common;

use common::{closed_port, TestEnv};
use personalify::server::config::FdwTarget;
use personalify::server::store::fdw::{self, Changes, Link};
use sqlx::{Connection, PgConnection, PgPool};

async fn foreign_table_oid(main: &PgPool) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'analytics' AND c.relname = 'plays' AND c.relkind = 'p'",
    )
    .fetch_optional(main)
    .await
    .expect("catalog")
}

async fn server_options(main: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT unnest(srvoptions) FROM pg_foreign_server WHERE srvname = $1")
        .bind(fdw::SERVER)
        .fetch_all(main)
        .await
        .expect("catalog")
}

async fn add_play(analytics: &PgPool, spotify_id: &str, minutes_ago: i32, artist: &str) {
    sqlx::query(
        "INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name, artist_name,
                            ms_played, source)
         VALUES ($1, now() - make_interval(mins => $2), 'tk' || $2, 'tk' || $2, 'Song', $3,
                 200000, 'recent')",
    )
    .bind(spotify_id)
    .bind(minutes_ago)
    .bind(artist)
    .execute(analytics)
    .await
    .expect("play");
}

#[tokio::test]
async fn start_up_links_main_to_the_analytics_node_and_a_second_run_changes_nothing() {
    let app = TestEnv::new().await.spawn().await;
    let stores = &app.state.stores;
    let ready: serde_json::Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["analytics_link"], "ready", "{ready}");

    let options = server_options(&stores.main).await;
    let target = app.env.config().unwrap().analytics_fdw;
    for wanted in [
        format!("host={}", target.host),
        format!("port={}", target.port),
        format!("dbname={}", target.dbname),
        "fetch_size=1000".to_string(),
        "use_remote_estimate=false".to_string(),
        "fdw_tuple_cost=0.2".to_string(),
        "options=-c cursor_tuple_fraction=1".to_string(),
        "async_capable=true".to_string(),
        "connect_timeout=5".to_string(),
    ] {
        assert!(options.contains(&wanted), "{wanted} not in {options:?}");
    }
    let oid = foreign_table_oid(&stores.main)
        .await
        .expect("analytics.plays");

    // The seed's walkthrough: a remote table joined with local users, on main.
    sqlx::query(
        "INSERT INTO users (spotify_id, display_name) VALUES ('ana', 'Ana'), ('ben', 'Ben')",
    )
    .execute(&stores.main)
    .await
    .unwrap();
    for (who, n) in [("ana", 3), ("ben", 2)] {
        for i in 0..n {
            add_play(&stores.analytics.pool, who, i * 5, "Band").await;
        }
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT u.display_name, count(*) FROM users u
           JOIN analytics.plays p ON p.spotify_id = u.spotify_id
          GROUP BY u.display_name ORDER BY 1",
    )
    .fetch_all(&stores.main)
    .await
    .expect("a cross-node join");
    assert_eq!(rows, vec![("Ana".into(), 3), ("Ben".into(), 2)]);

    let again = fdw::ensure(
        &stores.main,
        &[Link::first(&stores.analytics.pool, &target)],
    )
    .await
    .expect("second run");
    assert_eq!(again, Changes::default(), "a second run changes nothing");
    assert_eq!(foreign_table_oid(&stores.main).await, Some(oid));
    assert_eq!(server_options(&stores.main).await, options);
    app.shutdown().await;
}

#[tokio::test]
async fn a_changed_host_port_or_password_is_applied() {
    let app = TestEnv::new().await.spawn().await;
    let stores = &app.state.stores;
    let target = app.env.config().unwrap().analytics_fdw;
    add_play(&stores.analytics.pool, "ana", 1, "Band").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM analytics.plays")
            .fetch_one(&stores.main)
            .await
    };
    assert_eq!(count().await.expect("linked"), 1);

    // Another name for the same node: applied, and queries go on.
    let renamed = FdwTarget {
        host: "localhost".into(),
        ..target.clone()
    };
    let changes = fdw::ensure(
        &stores.main,
        &[Link::first(&stores.analytics.pool, &renamed)],
    )
    .await
    .expect("host change");
    assert_eq!(changes.server_options, vec!["host".to_string()]);
    assert!(server_options(&stores.main)
        .await
        .contains(&"host=localhost".to_string()));
    assert_eq!(count().await.expect("still linked"), 1);

    // A port where nothing listens: applied, so a query fails (in seconds, not hanging).
    let moved = FdwTarget {
        port: closed_port(),
        ..target.clone()
    };
    let changes = fdw::ensure(&stores.main, &[Link::first(&stores.analytics.pool, &moved)])
        .await
        .expect("port change");
    assert_eq!(changes.server_options, vec!["host", "port"]);
    let err = count().await.expect_err("nothing listens there");
    assert!(err.to_string().contains("could not connect"), "{err}");

    // A wrong password: applied, so the node refuses main.
    let wrong = FdwTarget {
        password: "not-the-password".to_string().into(),
        ..target.clone()
    };
    let changes = fdw::ensure(&stores.main, &[Link::first(&stores.analytics.pool, &wrong)])
        .await
        .expect("password change");
    assert_eq!(changes.server_options, vec!["port"]);
    assert_eq!(changes.mapping_options, vec!["password"]);
    let err = count().await.expect_err("wrong password");
    let detail = err
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .and_then(|e| e.detail())
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("password authentication failed"),
        "{err}: {detail}"
    );

    // And back.
    let changes = fdw::ensure(
        &stores.main,
        &[Link::first(&stores.analytics.pool, &target)],
    )
    .await
    .expect("restore");
    assert_eq!(changes.mapping_options, vec!["password"]);
    assert_eq!(count().await.expect("linked again"), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_changed_remote_table_is_imported_again_and_a_missing_one_is_imported() {
    let app = TestEnv::new().await.spawn().await;
    let stores = &app.state.stores;
    let target = app.env.config().unwrap().analytics_fdw;

    // A migration on the analytics node adds a column.
    sqlx::query("ALTER TABLE plays ADD COLUMN skipped BOOLEAN")
        .execute(&stores.analytics.pool)
        .await
        .unwrap();
    let changes = fdw::ensure(
        &stores.main,
        &[Link::first(&stores.analytics.pool, &target)],
    )
    .await
    .expect("re-import");
    assert_eq!(changes.reimported, vec!["plays".to_string()]);
    let skipped: Option<bool> =
        sqlx::query_scalar("SELECT skipped FROM analytics.plays WHERE false UNION ALL SELECT NULL")
            .fetch_one(&stores.main)
            .await
            .expect("the new column is visible on main");
    assert_eq!(skipped, None);

    // A remote table main has no foreign table for yet (as after a new migration).
    sqlx::query("DROP TABLE analytics.plays")
        .execute(&stores.main)
        .await
        .unwrap();
    let changes = fdw::ensure(
        &stores.main,
        &[Link::first(&stores.analytics.pool, &target)],
    )
    .await
    .expect("import");
    assert_eq!(changes.imported, vec!["plays".to_string()]);
    assert!(foreign_table_oid(&stores.main).await.is_some());
    app.shutdown().await;
}

#[tokio::test]
async fn the_filter_and_the_group_by_of_a_per_listener_query_run_on_the_analytics_node() {
    let app = TestEnv::new().await.spawn().await;
    let main = &app.state.stores.main;
    // The planner sends the aggregate when its statistics say it is cheaper there: so
    // with plays, as in use, and main's statistics of them (kept by the app, hourly).
    let node = &app.state.stores.analytics.pool;
    for i in 0..200 {
        add_play(
            node,
            ["ana", "ben"][i as usize % 2],
            i,
            ["Band", "Other", "Third"][i as usize % 3],
        )
        .await;
    }
    fdw::analyze(main).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (VERBOSE, COSTS OFF)
         SELECT artist_name, sum(ms_played) FROM analytics.plays
          WHERE spotify_id = 'ana' GROUP BY spotify_id, artist_name",
    )
    .fetch_all(main)
    .await
    .expect("plan");
    // One listener: one partition (ana's is 7), one remote query, grouped there.
    let remote: Vec<&String> = plan
        .iter()
        .filter(|l| l.trim_start().starts_with("Remote SQL:"))
        .collect();
    assert_eq!(remote.len(), 1, "{plan:#?}");
    let remote = remote[0];
    assert!(remote.contains("FROM public.plays_p7 "), "{remote}");
    assert!(remote.contains("WHERE ((spotify_id = 'ana'"), "{remote}");
    assert!(remote.contains("GROUP BY "), "{remote}");
    assert!(remote.contains("sum(ms_played)"), "{remote}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_fdw_address_is_named_and_the_app_still_serves() {
    let port = closed_port();
    let app = TestEnv::new()
        .await
        .set("ANALYTICS_FDW_PORT", port.to_string())
        .spawn()
        .await;
    let response = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), 503);
    let ready: serde_json::Value = response.json().await.expect("json");
    assert_eq!(ready["analytics_link"], "failed", "{ready}");
    assert!(
        ready["down"]
            .as_array()
            .is_some_and(|d| d.iter().any(|s| s == "analytics")),
        "{ready}"
    );
    let why = match app.state.stores.analytics.link_state() {
        personalify::server::store::pg::LinkState::Failed(why) => why,
        other => panic!("{other:?}"),
    };
    assert!(why.contains("ANALYTICS_FDW_HOST"), "{why}");
    assert!(why.contains(&port.to_string()), "{why}");
    // The rest of the app is unaffected.
    let home = app.http.get(app.url("/")).send().await.expect("home");
    assert_eq!(home.status(), 200);
    app.shutdown().await;
}

/// Statement logging of main's server, for this test's database only; the log file is the
/// one scripts/services.sh starts the cluster with.
#[tokio::test]
async fn the_password_never_reaches_mains_statement_log() {
    let env = TestEnv::new().await;
    let main_db = env.main_url().rsplit('/').next().unwrap().to_string();
    let mut admin = PgConnection::connect(env.main_url()).await.unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE \"{main_db}\" SET log_statement = 'all'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let app = env.spawn().await;
    let stores = &app.state.stores;
    let target = app.env.config().unwrap().analytics_fdw;
    let marker = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let changes = fdw::ensure(
        &stores.main,
        &[Link::first(
            &stores.analytics.pool,
            &FdwTarget {
                password: marker.clone().into(),
                ..target
            },
        )],
    )
    .await
    .expect("password change");
    assert_eq!(changes.mapping_options, vec!["password"]);

    let data_dir = std::env::var("PERSONALIFY_DATA_DIR")
        .unwrap_or_else(|_| format!("{}/.data", env!("CARGO_MANIFEST_DIR")));
    let log = std::fs::read_to_string(format!("{data_dir}/log/main.log"))
        .expect("main's server log (scripts/services.sh)");
    assert!(
        log.contains("ALTER USER MAPPING FOR CURRENT_USER"),
        "the statements were logged (else this test proves nothing)"
    );
    assert!(!log.contains(&marker), "the password is in main's log");
    app.shutdown().await;
}
