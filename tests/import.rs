//! Importing a privacy export over HTTP, against real clusters: the demo's sample export
//! end to end with exact counts, twice = once, overlap with recently played not doubled,
//! each bad input refused with its reason and nothing written, and an import that meets
//! the analytics node down waiting, then finishing whole.

mod common;

use common::{PausableProxy, TestApp, TestEnv};
use personalify::server::plays::ingest;
use personalify::server::sync::SyncUser;
use std::time::{Duration, Instant};

async fn upload(
    app: &TestApp,
    browser: &reqwest::Client,
    name: &str,
    bytes: Vec<u8>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = browser
        .post(app.url("/import/upload"))
        .header("accept", "application/json")
        .header("origin", app.url(""))
        .multipart(form)
        .send()
        .await
        .expect("the upload is answered");
    let status = response.status();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// (status, stored, plays read, podcasts, short, error) of import `id`, once it has ended.
async fn finished(app: &TestApp, id: i64) -> (String, Option<i64>, i64, i64, i64, Option<String>) {
    let started = Instant::now();
    loop {
        let row: (String, Option<i64>, i64, i64, i64, Option<String>) = sqlx::query_as(
            "SELECT status, stored, plays_read, podcasts, short, error FROM imports WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
        if row.0 == "done" || row.0 == "failed" {
            return row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "import {id} still {}",
            row.0
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn plays_of(app: &TestApp, user: &SyncUser) -> i64 {
    // Twice: after the node was down (a proxy the test took down), the pool may still hold
    // a connection that broke meanwhile; the first query on it fails and discards it.
    let count = || {
        sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
            .bind(&user.spotify_id)
            .fetch_one(&app.state.stores.analytics.pool)
    };
    match count().await {
        Ok(n) => n,
        Err(_) => count().await.unwrap(),
    }
}

async fn imports_of(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM imports")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap()
}

async fn sample(app: &TestApp, browser: &reqwest::Client) -> Vec<u8> {
    let response = browser
        .get(app.url("/import/sample.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    response.bytes().await.unwrap().to_vec()
}

/// A test environment whose uploads go to a folder of its own.
async fn env() -> (TestEnv, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("pfy-import-{}", uuid::Uuid::new_v4().simple()));
    let env = TestEnv::new()
        .await
        .set("IMPORT_DIR", dir.to_string_lossy().to_string());
    (env, dir)
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn the_sample_export_imports_exactly_once_beside_recently_played() {
    let (env, dir) = env().await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sim().freeze();
    // Recently played first: the export's last plays are these too.
    let polled = ingest::poll_user(&app.state, &user).await.unwrap();
    assert_eq!(polled.stored, 50);
    let zip = sample(&app, &browser).await;

    let (status, body) = upload(&app, &browser, "my_spotify_data.zip", zip.clone()).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().expect("an import id");
    let (state, stored, read, podcasts, short, error) = finished(&app, id).await;
    assert_eq!((state.as_str(), error), ("done", None));
    // The simulator's year: every play, of which every 37th is an episode and every 23rd
    // (not an episode) was skipped within seconds.
    let now = app.sim().now_ms();
    let year = app
        .sim()
        .plays_between(&user.spotify_id, now - 365 * 86_400_000, now);
    let n = year.len() as i64;
    let episodes = n / 37;
    let skipped = (1..=n).filter(|i| i % 23 == 0 && i % 37 != 0).count() as i64;
    assert_eq!((podcasts, short), (episodes, skipped));
    assert_eq!(read, n - episodes - skipped);
    // The 50 polled plays that the export also has (kept there) are not stored twice.
    let total = plays_of(&app, &user).await;
    assert_eq!(stored, Some(total - 50));
    assert!(total > 10_000, "a year of plays: {total}");
    assert!(
        read - stored.unwrap() <= 50 && read - stored.unwrap() > 30,
        "the overlap"
    );
    // The staging is empty, and the upload is gone.
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM import_staging")
        .fetch_one(&app.state.stores.analytics.pool)
        .await
        .unwrap();
    assert_eq!(staged, 0);
    assert_eq!(files_in(&dir), 0);

    // The same file again adds nothing.
    let (status, body) = upload(&app, &browser, "my_spotify_data.zip", zip).await;
    assert_eq!(status, 201, "{body}");
    let again = finished(&app, body["id"].as_i64().unwrap()).await;
    assert_eq!((again.0.as_str(), again.1), ("done", Some(0)));
    assert_eq!(plays_of(&app, &user).await, total);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_uploads_are_refused_with_their_reason_and_change_nothing() {
    let (env, dir) = env().await;
    let app = env.set("IMPORT_MAX_MB", "1").spawn().await;
    let (browser, user) = app.signed_in(None).await;
    let zip_of = |files: &[(&str, &[u8])]| {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            zip.start_file(*name, options).unwrap();
            zip.write_all(body).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "cat.png",
            b"\x89PNG\r\n\x1a\nrest".to_vec(),
            400,
            "neither a ZIP nor a JSON",
        ),
        (
            "Userdata.json",
            br#"{"username":"x","country":"ID"}"#.to_vec(),
            400,
            "not a list of plays",
        ),
        (
            "StreamingHistory_music_0.json",
            br#"[{"endTime":"2021-10-14 21:13","artistName":"Band","trackName":"Song","msPlayed":"#
                .to_vec(),
            400,
            "cut off",
        ),
        (
            "my_spotify_data.zip",
            zip_of(&[
                ("Spotify Account Data/Userdata.json", b"{}"),
                ("Spotify Account Data/Playlist1.json", b"{}"),
            ]),
            400,
            "no streaming history",
        ),
        (
            "bomb.zip",
            zip_of(&[(
                "Streaming_History_Audio_2024_0.json",
                &vec![b' '; 900 * 1024],
            )]),
            400,
            "far more than any Spotify export",
        ),
        (
            "big.json",
            vec![b' '; 2 * 1024 * 1024],
            413,
            "larger than 1 MB",
        ),
    ];
    for (name, bytes, status, says) in cases {
        let (got, body) = upload(&app, &browser, name, bytes).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
    }
    assert_eq!(imports_of(&app).await, 0, "no import was recorded");
    assert_eq!(plays_of(&app, &user).await, 0);
    assert_eq!(files_in(&dir), 0, "no upload is left behind");
    // Signed out: no upload at all.
    let anonymous = app.browser();
    let (got, _) = upload(&app, &anonymous, "x.json", b"[]".to_vec()).await;
    assert_eq!(got, 401);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A signed-in listener whose sample export was uploaded while the analytics node (behind
/// a proxy the test controls) is down: the import waits for it.
async fn waiting_import() -> (TestApp, PausableProxy, SyncUser, i64, std::path::PathBuf) {
    let (env, dir) = env().await;
    let (env, proxy) = env.behind_proxy("ANALYTICS_DATABASE_URL").await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    let zip = sample(&app, &browser).await;
    proxy.take_down().await;
    let (status, body) = upload(&app, &browser, "my_spotify_data.zip", zip).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    (app, proxy, user, id, dir)
}

#[tokio::test]
async fn an_import_that_meets_the_analytics_node_down_waits_then_finishes_whole() {
    let (app, proxy, user, id, dir) = waiting_import().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state: String = sqlx::query_scalar("SELECT status FROM imports WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(state, "reading", "it waits for the node");
    proxy.resume().await;
    let (state, stored, read, ..) = finished(&app, id).await;
    assert_eq!(state, "done");
    assert_eq!(
        stored,
        Some(read),
        "every play once: nothing was there before"
    );
    assert_eq!(plays_of(&app, &user).await, read);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Wait until import `id` has recorded that it waits for its stores (no try of it holds
/// its file open then).
async fn until_waiting(app: &TestApp, id: i64) {
    let started = Instant::now();
    loop {
        let waiting: bool =
            sqlx::query_scalar("SELECT stuck_since IS NOT NULL FROM imports WHERE id = $1")
                .bind(id)
                .fetch_one(&app.state.stores.main)
                .await
                .unwrap();
        if waiting {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "import {id} never waited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_import_whose_upload_is_gone_fails_with_the_reason_and_adds_nothing() {
    let (app, proxy, user, id, dir) = waiting_import().await;
    // The import folder is cleared while the import waits.
    until_waiting(&app, id).await;
    std::fs::remove_dir_all(&dir).unwrap();
    proxy.resume().await;
    let (state, stored, .., error) = finished(&app, id).await;
    assert_eq!((state.as_str(), stored), ("failed", None));
    assert!(
        error
            .unwrap_or_default()
            .contains("no longer on the server"),
        "the reason is given"
    );
    assert_eq!(plays_of(&app, &user).await, 0, "nothing half imported");
    app.shutdown().await;
}

/// A resumed import re-reads the batch whose progress was not recorded, and an export may
/// hold an entry twice: both are staged twice and stored once.
#[tokio::test]
async fn a_batch_staged_twice_is_stored_once() {
    use personalify::server::plays::{import, Play, Source};
    let (env, dir) = env().await;
    let app = env.spawn().await;
    let analytics = &app.state.stores.analytics.pool;
    let at = chrono::Utc::now() - chrono::Duration::days(1);
    let batch: Vec<Play> = (0..120)
        .map(|i| Play {
            played_at: at + chrono::Duration::minutes(i / 2 * 4),
            track_id: Some(format!("t{}", i / 2)),
            track_name: "Song".into(),
            artist_name: "Band".into(),
            artist_id: None,
            album_name: None,
            ms_played: 200_000,
            source: Source::Extended,
        })
        .collect();
    import::stage(analytics, 9, "ana", &batch).await.unwrap();
    import::stage(analytics, 9, "ana", &batch[..60])
        .await
        .unwrap();
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM import_staging WHERE import_id = 9")
        .fetch_one(analytics)
        .await
        .unwrap();
    assert_eq!(staged, 180);
    assert_eq!(
        import::finalize(analytics, 9).await.unwrap(),
        60,
        "60 distinct plays"
    );
    let (plays, rollup): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM plays WHERE spotify_id = 'ana'),
                (SELECT plays FROM plays_by_listener WHERE spotify_id = 'ana')",
    )
    .fetch_one(analytics)
    .await
    .unwrap();
    assert_eq!((plays, rollup), (60, 60));
    // Finalised again (a retry after its commit): the recorded count, nothing moved.
    assert_eq!(import::finalize(analytics, 9).await.unwrap(), 60);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// An export found broken after two batches were staged: the import fails and its staging
/// is dropped, so nothing of it is in `plays` or the rollups, and the import says why.
#[tokio::test]
async fn an_import_cut_off_midway_adds_nothing() {
    let (app, proxy, user, id, dir) = waiting_import().await;
    until_waiting(&app, id).await;
    // While it waits, its file becomes 12,000 good plays and then an entry cut off.
    let mut json = String::from("[");
    for i in 0..12_000 {
        json.push_str(&format!(
            r#"{{"ts":"2025-01-{:02}T{:02}:{:02}:00Z","ms_played":200000,"master_metadata_track_name":"Song {i}","master_metadata_album_artist_name":"Band","master_metadata_album_album_name":"Album","spotify_track_uri":"spotify:track:t{i}"}},"#,
            1 + i / 1440 % 28,
            i / 60 % 24,
            i % 60
        ));
    }
    json.push_str(r#"{"ts":"2025-02-01T00:00:00Z","ms_pl"#);
    std::fs::write(dir.join(format!("import-{id}.upload")), json).unwrap();
    proxy.resume().await;
    let (state, stored, .., error) = finished(&app, id).await;
    assert_eq!((state.as_str(), stored), ("failed", None));
    assert!(
        error.unwrap_or_default().contains("cut off"),
        "the reason is given"
    );
    assert_eq!(plays_of(&app, &user).await, 0, "nothing half imported");
    let analytics = &app.state.stores.analytics.pool;
    let rollup: i64 = sqlx::query_scalar("SELECT count(*) FROM plays_by_listener")
        .fetch_one(analytics)
        .await
        .unwrap();
    assert_eq!(rollup, 0, "nor in the rollups");
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM import_staging")
        .fetch_one(analytics)
        .await
        .unwrap();
    assert_eq!(staged, 0, "its staging is gone");
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
