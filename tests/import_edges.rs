//! Imports at the edges (issue 22), against real clusters: an export with a 1 MB name, a
//! bad URI, U+0000 and a value of the wrong kind imports with bounded names and the bad
//! entry counted, and another listener's /listening page stays small; stores that stay
//! down fail the import with a sentence after IMPORT_STORE_WAIT_SECS; the owner cancels a
//! running import and nothing of it remains; a job that panics fails its import; the sweep
//! resumes an import left unfinished and drops what no running import owns; uploads are
//! refused before their body (second upload, no slot, disk nearly full), cut-off uploads
//! leave no file, and files are 0600 in a folder of the app's own.

mod common;

use common::{PausableProxy, TestApp, TestEnv};
use personalify::server::plays::import;
use personalify::server::sim::Simulator;
use personalify::server::sync::SyncUser;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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

/// Wait (at most 60 s) until `check` holds, polling.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status_of(app: &TestApp, id: i64) -> (String, Option<i64>, i64, i64, Option<String>) {
    sqlx::query_as(
        "SELECT status, stored, plays_read, unreadable, error FROM imports WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.state.stores.main)
    .await
    .unwrap()
}

/// (status, stored, plays read, unreadable, error) of import `id` once it has ended.
async fn finished(app: &TestApp, id: i64) -> (String, Option<i64>, i64, i64, Option<String>) {
    until(&format!("import {id} ends"), || async {
        let s = status_of(app, id).await.0;
        s == "done" || s == "failed" || s == "canceled"
    })
    .await;
    status_of(app, id).await
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    // Twice: after the node was down, the pool may hand out one connection that broke.
    match sqlx::query_scalar(sql).fetch_one(pool).await {
        Ok(n) => n,
        Err(_) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

/// A test environment whose uploads go to a folder of its own (made by the app).
async fn env() -> (TestEnv, PathBuf) {
    let dir = std::env::temp_dir()
        .join(format!("pfy-edges-{}", uuid::Uuid::new_v4().simple()))
        .join("imports");
    let env = TestEnv::new()
        .await
        .set("IMPORT_DIR", dir.to_string_lossy().to_string());
    (env, dir)
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_test_dir(dir: &Path) {
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir_all(parent);
    }
}

/// Extended-history entries: `n` plays of "Song {i}" by "Band", `minutes_ago` before now
/// and a minute apart.
fn plays_json(n: usize, minutes_ago: i64) -> Vec<String> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let at = now - chrono::Duration::minutes(minutes_ago + i as i64);
            format!(
                r#"{{"ts":"{}","ms_played":200000,"master_metadata_track_name":"Song {i}","master_metadata_album_artist_name":"Band","master_metadata_album_album_name":"Album","spotify_track_uri":null}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ")
            )
        })
        .collect()
}

#[tokio::test]
async fn a_flooding_export_imports_bounded_and_other_listeners_pages_stay_small() {
    let (env, dir) = env().await;
    let app = env.spawn().await;
    let demo = Simulator::demo_users();
    let (flooder, flooder_user) = app.signed_in(Some(demo[0].id)).await;
    let (other, _) = app.signed_in(Some(demo[1].id)).await;
    let huge = "Z".repeat(1024 * 1024);
    let now = chrono::Utc::now();
    let mut entries: Vec<String> = (0..25)
        .map(|i| {
            let at = now - chrono::Duration::minutes(5 + i);
            format!(
                r#"{{"ts":"{}","ms_played":200000,"master_metadata_track_name":"{huge}","master_metadata_album_artist_name":"Flood\u0000Band","master_metadata_album_album_name":"Album","spotify_track_uri":"spotify:track:{}"}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                "a".repeat(4_986)
            )
        })
        .collect();
    // One entry with a value of the wrong kind: skipped, not the file.
    entries.push(
        r#"{"ts":"2024-01-01T10:00:00Z","ms_played":"abc","master_metadata_track_name":"Odd","master_metadata_album_artist_name":"Band"}"#
            .into(),
    );
    let json = format!("[{}]", entries.join(","));
    let (status, body) = upload(&app, &flooder, "flood.json", json.into_bytes()).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (state, stored, read, unreadable, error) = finished(&app, id).await;
    assert_eq!((state.as_str(), error), ("done", None));
    assert_eq!((stored, read, unreadable), (Some(25), 25, 1));
    let analytics = &app.state.stores.analytics.pool;
    let (longest, nul, ids): (i32, i64, i64) = sqlx::query_as(
        "SELECT max(length(track_name)), count(*) FILTER (WHERE artist_name <> 'FloodBand'),
                count(track_id)
           FROM plays WHERE spotify_id = $1",
    )
    .bind(&flooder_user.spotify_id)
    .fetch_one(analytics)
    .await
    .unwrap();
    assert_eq!(longest, 512, "names cut to 512 characters");
    assert_eq!(nul, 0, "U+0000 stripped");
    assert_eq!(ids, 0, "a 5,000-character URI is no track id");

    // Another listener's page shows the flood trending, bounded.
    let page = app.page(&other, "/listening").await;
    let cut = format!("{}…", "Z".repeat(511));
    assert!(page.contains(&cut), "trending shows the bounded name");
    assert!(!page.contains(&"Z".repeat(600)), "never the long text");
    assert!(
        page.len() < 200_000,
        "/listening is {} bytes with the flood trending",
        page.len()
    );
    app.shutdown().await;
    remove_test_dir(&dir);
}

/// A signed-in listener whose sample export was uploaded while the analytics node (behind
/// a proxy the test controls) is down: the import waits for it.
async fn waiting_import(env: TestEnv) -> (TestApp, PausableProxy, reqwest::Client, SyncUser, i64) {
    let (env, proxy) = env.behind_proxy("ANALYTICS_DATABASE_URL").await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    let sample = browser
        .get(app.url("/import/sample.zip"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    proxy.take_down().await;
    let (status, body) = upload(&app, &browser, "my_spotify_data.zip", sample).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    (app, proxy, browser, user, id)
}

#[tokio::test]
async fn an_import_whose_stores_stay_down_fails_with_a_sentence_after_the_bound() {
    let (env, dir) = env().await;
    let (app, proxy, _, _, id) = waiting_import(env.set("IMPORT_STORE_WAIT_SECS", "2")).await;
    let (state, stored, .., error) = finished(&app, id).await;
    assert_eq!((state.as_str(), stored), ("failed", None));
    let error = error.unwrap_or_default();
    assert!(
        error.contains("did not answer for 2 seconds") && error.contains("upload the file again"),
        "{error}"
    );
    // Removed right after the failure is recorded.
    until("its upload is removed", || async {
        files_in(&dir).is_empty()
    })
    .await;
    proxy.resume().await;
    app.shutdown().await;
    remove_test_dir(&dir);
}

#[tokio::test]
async fn a_second_upload_is_refused_before_its_body_is_sent() {
    let (env, dir) = env().await;
    let (app, proxy, _, user, _) = waiting_import(env).await;
    let token = personalify::server::auth::session::create(&app.state.stores.main, user.user_id)
        .await
        .unwrap();
    let addr = app.base.trim_start_matches("http://");
    // Headers announcing 100 MB, then nothing more of the body.
    let request = format!(
        "POST /import/upload HTTP/1.1\r\nHost: {addr}\r\nOrigin: {}\r\nAccept: application/json\r\n\
         Cookie: {}={token}\r\nContent-Type: multipart/form-data; boundary=XYZ\r\n\
         Content-Length: 104857600\r\n\r\n--XYZ\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"again.zip\"\r\n\r\nPK",
        app.base,
        personalify::server::auth::session::SESSION_COOKIE,
    );
    let (answer, _) =
        common::raw_exchange(&app.base, request.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer:.300}");
    assert!(answer.contains("already running"), "{answer:.600}");
    assert_eq!(files_in(&dir).len(), 1, "only the running import's file");
    proxy.resume().await;
    app.shutdown().await;
    remove_test_dir(&dir);
}

#[tokio::test]
async fn the_owner_cancels_a_running_import_and_nothing_of_it_remains() {
    let (env, dir) = env().await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    let analytics = app.state.stores.analytics.pool.clone();
    // Hold plays on the node so the final move waits, with the plays staged.
    let mut holder = analytics.begin().await.unwrap();
    sqlx::query("LOCK TABLE plays IN SHARE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let json = format!("[{}]", plays_json(12_000, 60 * 24).join(","));
    let (status, body) = upload(&app, &browser, "history.json", json.into_bytes()).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    until("the import waits in storing, staged", || async {
        status_of(&app, id).await.0 == "storing"
            && count(&analytics, "SELECT count(*) FROM import_staging").await == 12_000
    })
    .await;
    let page = app.page(&browser, "/import").await;
    let action = format!("action=\"/import/{id}/cancel\"");
    assert!(page.contains(&action), "a cancel form on the Import page");

    // The form's post, as a browser without JavaScript sends it.
    let response = browser
        .post(app.url(&format!("/import/{id}/cancel")))
        .header("origin", app.url(""))
        .form(&[("cancel", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/import");
    let (state, stored, ..) = status_of(&app, id).await;
    assert_eq!((state.as_str(), stored), ("canceled", None));
    assert_eq!(
        count(&analytics, "SELECT count(*) FROM import_staging").await,
        0
    );
    assert!(files_in(&dir).is_empty(), "its upload is removed");
    holder.rollback().await.unwrap();
    // Nothing of it lands later either: the job stopped before the move could commit.
    assert!(!app.state.imports.running(id), "its job has stopped");
    assert_eq!(count(&analytics, "SELECT count(*) FROM plays").await, 0);
    let page = app.page(&browser, "/import").await;
    assert!(page.contains("Canceled: nothing of this file was added."));
    // Another listener cannot cancel it; an unknown id is a 404; the next upload is taken.
    let (status, body) = upload(
        &app,
        &browser,
        "again.json",
        plays_json(3, 60).join(",").into_bytes(),
    )
    .await;
    assert_ne!(status, 409, "{body}");
    let (stranger, _) = app.signed_in(Some(Simulator::demo_users()[1].id)).await;
    let refused = stranger
        .post(app.url(&format!("/import/{id}/cancel")))
        .header("origin", app.url(""))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let _ = user;
    app.shutdown().await;
    remove_test_dir(&dir);
}

#[tokio::test]
async fn a_job_that_panics_fails_its_import_and_the_sweep_resumes_one_left_unfinished() {
    let (env, dir) = env().await;
    let app = env.spawn().await;
    let (_, user) = app.signed_in(None).await;
    let main = &app.state.stores.main;
    let analytics = &app.state.stores.analytics.pool;
    // A job that panics midway, with plays staged.
    let panicking: i64 = sqlx::query_scalar(
        "INSERT INTO imports (user_id, file_name, bytes, status) VALUES ($1, 'x.json', 1, 'reading')
         RETURNING id",
    )
    .bind(user.user_id)
    .fetch_one(main)
    .await
    .unwrap();
    let play = personalify::server::plays::Play {
        played_at: chrono::Utc::now() - chrono::Duration::days(2),
        track_id: None,
        track_name: "Song".into(),
        artist_name: "Band".into(),
        artist_id: None,
        album_name: None,
        ms_played: 200_000,
        source: personalify::server::plays::Source::Extended,
    };
    import::stage(analytics, panicking, &user.spotify_id, &[play])
        .await
        .unwrap();
    assert!(import::supervise(&app.state, panicking, |_| async {
        panic!("a bug in the job");
    }));
    let (state, _, _, _, error) = finished(&app, panicking).await;
    assert_eq!(state, "failed");
    assert!(error.unwrap_or_default().contains("error of its own"));
    assert_eq!(
        count(analytics, "SELECT count(*) FROM import_staging").await,
        0
    );

    // An import a stopped process left in `reading` (its lease over), its upload in place:
    // the sweep (every minute, not only at start-up) runs it.
    let left: i64 = sqlx::query_scalar(
        "INSERT INTO imports (user_id, file_name, bytes, status, leased_by, leased_until)
         VALUES ($1, 'left.json', 1, 'reading', 42, now() - interval '1 minute') RETURNING id",
    )
    .bind(user.user_id)
    .fetch_one(main)
    .await
    .unwrap();
    std::fs::write(
        import::upload_path(&dir, left),
        format!("[{}]", plays_json(30, 60).join(",")),
    )
    .unwrap();
    // Staging of an import that no longer exists (its listener deleted), and an old
    // upload of a finished one: both swept.
    import::stage(
        analytics,
        999_999,
        "gone",
        &[personalify::server::plays::Play {
            played_at: chrono::Utc::now(),
            track_id: None,
            track_name: "Gone".into(),
            artist_name: "Gone".into(),
            artist_id: None,
            album_name: None,
            ms_played: 200_000,
            source: personalify::server::plays::Source::Extended,
        }],
    )
    .await
    .unwrap();
    std::fs::write(import::upload_path(&dir, panicking), b"[]").unwrap();
    let swept = import::sweep(&app.state).await;
    assert_eq!(swept.resumed, 1);
    assert_eq!(swept.staging_dropped, 1);
    assert_eq!(swept.files_removed, 1);
    let (state, stored, ..) = finished(&app, left).await;
    assert_eq!((state.as_str(), stored), ("done", Some(30)));
    app.shutdown().await;
    remove_test_dir(&dir);
}

#[tokio::test]
async fn a_batch_the_node_refuses_is_staged_play_by_play_and_the_bad_one_skipped() {
    let (env, dir) = env().await;
    let app = env.spawn().await;
    let analytics = &app.state.stores.analytics.pool;
    let at = chrono::Utc::now() - chrono::Duration::days(1);
    let mut plays: Vec<personalify::server::plays::Play> = (0..10)
        .map(|i| personalify::server::plays::Play {
            played_at: at + chrono::Duration::minutes(i),
            track_id: None,
            track_name: format!("Song {i}"),
            artist_name: "Band".into(),
            artist_id: None,
            album_name: None,
            ms_played: 200_000,
            source: personalify::server::plays::Source::Extended,
        })
        .collect();
    // Past the edge (a bug, or a store's own limit): text PostgreSQL refuses.
    plays[4].track_name = "Bad\0Name".into();
    let skipped = import::stage_skipping(analytics, 7, "ana", &plays)
        .await
        .unwrap();
    assert_eq!(skipped, 1);
    assert_eq!(
        count(
            analytics,
            "SELECT count(*) FROM import_staging WHERE import_id = 7"
        )
        .await,
        9
    );
    app.shutdown().await;
    remove_test_dir(&dir);
}

/// A raw upload of `user` that sends its headers and the start of the file, then stalls
/// (the connection stays open until the returned stream is dropped).
async fn stalled_upload(app: &TestApp, user_id: i64) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let token = personalify::server::auth::session::create(&app.state.stores.main, user_id)
        .await
        .unwrap();
    let addr = app.base.trim_start_matches("http://");
    let request = format!(
        "POST /import/upload HTTP/1.1\r\nHost: {addr}\r\nOrigin: {}\r\nAccept: application/json\r\n\
         Cookie: {}={token}\r\nContent-Type: multipart/form-data; boundary=XYZ\r\n\
         Content-Length: 1048576\r\n\r\n--XYZ\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"slow.json\"\r\n\r\n[{{\"ts\":\"2024-01-01T00:00:00Z\"",
        app.base,
        personalify::server::auth::session::SESSION_COOKIE,
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn uploads_are_bounded_and_one_cut_off_leaves_no_file() {
    let (env, dir) = env().await;
    let app = env.set("IMPORT_MAX_UPLOADS", "1").spawn().await;
    let demo = Simulator::demo_users();
    let (_, slow_user) = app.signed_in(Some(demo[0].id)).await;
    let (other, _) = app.signed_in(Some(demo[1].id)).await;
    let stalled = stalled_upload(&app, slow_user.user_id).await;
    until("the stalled upload is being written", || async {
        files_in(&dir).iter().any(|f| f.ends_with(".part"))
    })
    .await;
    let part = files_in(&dir).pop().unwrap();
    let mode = std::fs::metadata(dir.join(&part))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the app's user reads an upload");
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "a folder of the app's own");

    let json = format!("[{}]", plays_json(3, 60).join(","));
    let (status, body) = upload(&app, &other, "mine.json", json.clone().into_bytes()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("Try again"));

    // The client goes away mid-upload: its file goes, and its slot.
    drop(stalled);
    until("the cut-off upload's file is removed", || async {
        files_in(&dir).is_empty()
    })
    .await;
    let (status, body) = upload(&app, &other, "mine.json", json.into_bytes()).await;
    assert_eq!(status, 201, "{body}");
    app.shutdown().await;
    remove_test_dir(&dir);
}

#[tokio::test]
async fn an_upload_is_refused_when_the_disk_is_nearly_full() {
    let (env, dir) = env().await;
    // More free space than any disk has.
    let app = env.set("IMPORT_MIN_FREE_MB", "1000000000").spawn().await;
    let (browser, _) = app.signed_in(None).await;
    let json = format!("[{}]", plays_json(3, 60).join(","));
    let (status, body) = upload(&app, &browser, "mine.json", json.into_bytes()).await;
    assert_eq!(status, 507, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("disk is too full"));
    assert!(files_in(&dir).is_empty());
    app.shutdown().await;
    remove_test_dir(&dir);
}

#[tokio::test]
async fn part_leftovers_are_swept_and_a_shared_folder_is_refused() {
    let (env, dir) = env().await;
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let old = dir.join("upload-old.part");
    let fresh = dir.join("upload-fresh.part");
    // Their times on this process's clock (not the file system's, which a fake clock in
    // scripts/test-at.sh does not move).
    let now = std::time::SystemTime::now();
    for path in [&old, &fresh] {
        std::fs::write(path, b"[").unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(now)
            .unwrap();
    }
    let ten_minutes_ago = now - Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(ten_minutes_ago)
        .unwrap();
    // At start-up.
    let app = env.clone().spawn().await;
    assert_eq!(files_in(&dir), vec!["upload-fresh.part".to_string()]);
    // And by the sweep, once it is old.
    std::fs::File::options()
        .write(true)
        .open(&fresh)
        .unwrap()
        .set_modified(ten_minutes_ago)
        .unwrap();
    assert_eq!(import::sweep(&app.state).await.files_removed, 1);
    assert!(files_in(&dir).is_empty());
    app.shutdown().await;

    // A folder every user can write to (the shared temporary folder) is refused.
    let shared = dir.parent().unwrap().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = TestEnv::new()
        .await
        .set("IMPORT_DIR", shared.to_string_lossy().to_string())
        .config()
        .unwrap();
    let err = personalify::server::startup::Application::build(config)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("every user of the machine"),
        "{err}"
    );
    let relative = TestEnv::new().await.set("IMPORT_DIR", "imports").config();
    assert!(relative.is_err(), "a relative IMPORT_DIR is refused");
    remove_test_dir(&dir);
}
