//! Sync history against the real stores: MongoDB snapshots written exactly once with the
//! newest winning `user_syncs`, the PostgreSQL outbox that carries them across a MongoDB
//! outage, and the history server function over HTTP.

mod common;

use common::{closed_port, TestApp, TestEnv};
use mongodb::bson::{doc, Bson, Document};
use personalify::domain::history::{HistoryView, Movement};
use personalify::domain::{
    ArtistRef, GenreShare, Genres, TimeRange, TopArtist, TopPayload, TopTrack,
};
use personalify::server::store::mongo::{Mongo, HISTORY, USER_SYNCS};
use personalify::server::sync::outbox::{self, Delivery};
use std::time::Duration;

/// A payload whose artists are `ids` in rank order, and tracks `t<id>` likewise.
fn payload(
    spotify_id: &str,
    range: TimeRange,
    sync_id: i64,
    synced_at: &str,
    ids: &[&str],
) -> TopPayload {
    let n = ids.len();
    TopPayload {
        spotify_id: spotify_id.into(),
        time_range: range,
        sync_id,
        synced_at: synced_at.into(),
        previous_sync_id: None,
        artists: ids
            .iter()
            .enumerate()
            .map(|(i, id)| TopArtist {
                rank: i as u16 + 1,
                id: id.to_string(),
                name: format!("Artist {id}"),
                genres: (i % 2 == 0).then(|| vec!["indie".to_string(), format!("g{i}")]),
                image_url: Some(format!("https://img.example/{id}.jpg")),
                popularity: (i % 3 == 0).then_some(70 + i as u32),
                previous_rank: None,
            })
            .collect(),
        tracks: ids
            .iter()
            .enumerate()
            .map(|(i, id)| TopTrack {
                rank: i as u16 + 1,
                id: format!("t{id}"),
                name: format!("Track {id}"),
                artists: vec![ArtistRef {
                    id: id.to_string(),
                    name: format!("Artist {id}"),
                }],
                album: (i % 2 == 1).then(|| format!("Album {id}")),
                image_url: None,
                duration_ms: Some(180_000 + i as u64),
                previous_rank: None,
            })
            .collect(),
        genres: if n == 0 {
            Genres::Unavailable
        } else {
            Genres::Available {
                shares: vec![
                    GenreShare {
                        genre: "indie".into(),
                        share: 0.625,
                    },
                    GenreShare {
                        genre: "g0".into(),
                        share: 0.375,
                    },
                ],
            }
        },
    }
}

fn collection(mongo: &Mongo, name: &str) -> mongodb::Collection<Document> {
    mongo.db.collection(name)
}

async fn count(mongo: &Mongo, name: &str, filter: Document) -> u64 {
    collection(mongo, name)
        .count_documents(filter)
        .await
        .expect("count documents")
}

/// The test's MongoDB database goes when the test is done (each test has its own).
async fn finish(app: TestApp) {
    let _ = app.state.stores.mongo.db.drop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_snapshot_written_twice_is_stored_once() {
    let app = TestEnv::new().await.spawn().await;
    let mongo = &app.state.stores.mongo;
    mongo.ensure_indexes().await.expect("indexes");
    mongo
        .ensure_indexes()
        .await
        .expect("indexes again: idempotent");

    let snapshot = payload(
        "ana",
        TimeRange::ShortTerm,
        7,
        "2026-11-22T10:00:00.123Z",
        &["a", "b"],
    );
    mongo
        .write_snapshot("7-short_term", &snapshot)
        .await
        .expect("first delivery");
    mongo
        .write_snapshot("7-short_term", &snapshot)
        .await
        .expect("redelivery is Ok");

    assert_eq!(count(mongo, HISTORY, doc! {}).await, 1);
    assert_eq!(
        count(mongo, HISTORY, doc! { "_id": "7-short_term" }).await,
        1
    );
    // What a person finds in mongosh with the seed design's query.
    let latest: Vec<Document> = {
        let mut cursor = collection(mongo, USER_SYNCS)
            .find(doc! { "spotify_id": "ana" })
            .await
            .unwrap();
        let mut docs = Vec::new();
        while cursor.advance().await.unwrap() {
            docs.push(cursor.deserialize_current().unwrap());
        }
        docs
    };
    assert_eq!(latest.len(), 1);
    let doc = &latest[0];
    assert_eq!(doc.get_str("snapshot_id").unwrap(), "7-short_term");
    assert_eq!(doc.get_str("time_range").unwrap(), "short_term");
    assert_eq!(doc.get_i64("sync_id").unwrap(), 7);
    assert!(
        matches!(doc.get("synced_at"), Some(Bson::DateTime(at)) if at.timestamp_millis() == 1_795_341_600_123),
        "synced_at is a BSON date: {:?}",
        doc.get("synced_at")
    );
    assert_eq!(doc.get_array("artists").unwrap().len(), 2);

    assert_eq!(
        mongo.latest("ana", TimeRange::ShortTerm).await.unwrap(),
        Some(snapshot)
    );
    assert_eq!(
        mongo.latest("ana", TimeRange::LongTerm).await.unwrap(),
        None
    );
    finish(app).await;
}

#[tokio::test]
async fn an_older_snapshot_arriving_late_goes_to_history_only() {
    let app = TestEnv::new().await.spawn().await;
    let mongo = &app.state.stores.mongo;
    let older = payload(
        "ana",
        TimeRange::ShortTerm,
        1,
        "2026-11-01T08:00:00.000Z",
        &["a", "b", "c"],
    );
    let newer = payload(
        "ana",
        TimeRange::ShortTerm,
        2,
        "2026-11-08T08:00:00.000Z",
        &["c", "a"],
    );
    let other_range = payload(
        "ana",
        TimeRange::LongTerm,
        1,
        "2026-11-01T08:00:00.000Z",
        &["z"],
    );
    let other_user = payload(
        "ben",
        TimeRange::ShortTerm,
        3,
        "2026-11-09T08:00:00.000Z",
        &["q"],
    );

    mongo.write_snapshot("2-short_term", &newer).await.unwrap();
    mongo.write_snapshot("1-short_term", &older).await.unwrap();
    mongo
        .write_snapshot("1-long_term", &other_range)
        .await
        .unwrap();
    mongo
        .write_snapshot("3-short_term", &other_user)
        .await
        .unwrap();

    // The newer one stays the latest; the unique index kept the late one from adding a
    // second "latest" document.
    assert_eq!(
        mongo.latest("ana", TimeRange::ShortTerm).await.unwrap(),
        Some(newer.clone())
    );
    assert_eq!(
        count(
            mongo,
            USER_SYNCS,
            doc! { "spotify_id": "ana", "time_range": "short_term" }
        )
        .await,
        1
    );
    assert_eq!(count(mongo, USER_SYNCS, doc! {}).await, 3);
    assert_eq!(
        mongo.latest("ana", TimeRange::LongTerm).await.unwrap(),
        Some(other_range)
    );

    // Both are history, exactly as written, read back by their ids.
    let mut history: Vec<TopPayload> = mongo
        .snapshots_by_id(
            &["2-short_term".to_string(), "1-short_term".to_string()],
            doc! {},
        )
        .await
        .unwrap();
    history.sort_by_key(|p| p.sync_id);
    assert_eq!(history, vec![older, newer.clone()]);

    // A newer snapshot does replace it; so does a later sync of the same millisecond.
    let newest = payload(
        "ana",
        TimeRange::ShortTerm,
        4,
        "2026-11-15T08:00:00.000Z",
        &["b"],
    );
    mongo.write_snapshot("4-short_term", &newest).await.unwrap();
    assert_eq!(
        mongo.latest("ana", TimeRange::ShortTerm).await.unwrap(),
        Some(newest.clone())
    );
    let same_ms = payload(
        "ana",
        TimeRange::ShortTerm,
        5,
        "2026-11-15T08:00:00.000Z",
        &["d"],
    );
    mongo
        .write_snapshot("5-short_term", &same_ms)
        .await
        .unwrap();
    assert_eq!(
        mongo.latest("ana", TimeRange::ShortTerm).await.unwrap(),
        Some(same_ms)
    );
    // ...but not the earlier sync of that millisecond, delivered again.
    mongo.write_snapshot("4-short_term", &newest).await.unwrap();
    assert_eq!(
        mongo
            .latest("ana", TimeRange::ShortTerm)
            .await
            .unwrap()
            .map(|p| p.sync_id),
        Some(5)
    );
    assert_eq!(count(mongo, HISTORY, doc! { "spotify_id": "ana" }).await, 5);
    finish(app).await;
}

#[tokio::test]
async fn history_returns_times_in_utc_with_milliseconds() {
    let app = TestEnv::new().await.spawn().await;
    let mongo = &app.state.stores.mongo;
    // The same instant written with an offset comes back in the sync's own format.
    let snapshot = payload(
        "ana",
        TimeRange::MediumTerm,
        9,
        "2026-11-22T12:00:00.5+02:00",
        &["a"],
    );
    mongo
        .write_snapshot("9-medium_term", &snapshot)
        .await
        .unwrap();
    let history: Vec<TopPayload> = mongo
        .snapshots_by_id(&["9-medium_term".to_string()], doc! {})
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].synced_at, "2026-11-22T10:00:00.500Z");
    assert_eq!(
        TopPayload {
            synced_at: snapshot.synced_at.clone(),
            ..history[0].clone()
        },
        snapshot
    );
    finish(app).await;
}

/// Rows left in the outbox: snapshot id, attempts, last error, parked.
async fn outbox_rows(app: &TestApp) -> Vec<(String, i32, Option<String>, bool)> {
    sqlx::query_as(
        "SELECT snapshot_id, attempts, last_error, parked_at IS NOT NULL
           FROM mongo_outbox ORDER BY id",
    )
    .fetch_all(&app.state.stores.main)
    .await
    .unwrap()
}

/// A `Mongo` for the test's database on a port where nothing listens.
async fn unreachable_mongo(app: &TestApp) -> Mongo {
    let url = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        closed_port()
    );
    Mongo::connect(
        &url.into(),
        app.state.stores.mongo.db.name(),
        Duration::from_secs(1),
    )
    .await
    .expect("the client is built even when the server is down")
}

#[tokio::test]
async fn the_outbox_keeps_snapshots_while_mongodb_is_down_and_delivers_each_once() {
    let app = TestEnv::new().await.spawn().await;
    let pool = &app.state.stores.main;
    let mongo = &app.state.stores.mongo;
    let snapshots: Vec<(String, TopPayload)> = TimeRange::ALL
        .into_iter()
        .map(|range| {
            let p = payload(
                "ana",
                range,
                11,
                "2026-11-22T10:00:00.000Z",
                &["a", "b", "c"],
            );
            (format!("11-{range}"), p)
        })
        .collect();
    {
        // As the sync does it: inside its transaction.
        let mut tx = pool.begin().await.unwrap();
        for (id, p) in &snapshots {
            outbox::enqueue(&mut tx, id, p).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    let down = unreachable_mongo(&app).await;
    let report = outbox::deliver_pending(pool, &down).await.unwrap();
    assert_eq!(
        report,
        Delivery {
            delivered: 0,
            failed: 1,
            parked: 0,
            pending: 3
        }
    );
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| !r.3),
        "MongoDB down parks nothing: {rows:?}"
    );
    // The first row failed and stopped the batch: the others were not tried.
    assert_eq!(rows[0].1, 1);
    let error = rows[0].2.as_deref().unwrap_or_default();
    assert!(error.contains("MongoDB unreachable"), "{error}");
    assert!(error.len() <= 200);
    assert_eq!((rows[1].1, rows[2].1), (0, 0));
    assert_eq!(count(mongo, HISTORY, doc! {}).await, 0);
    assert_eq!(count(mongo, USER_SYNCS, doc! {}).await, 0);

    let report = outbox::deliver_pending(pool, mongo).await.unwrap();
    assert_eq!(
        report,
        Delivery {
            delivered: 3,
            failed: 0,
            parked: 0,
            pending: 0
        }
    );
    assert!(
        outbox_rows(&app).await.is_empty(),
        "delivered rows are removed"
    );
    for (id, p) in &snapshots {
        assert_eq!(count(mongo, HISTORY, doc! { "_id": id }).await, 1, "{id}");
        assert_eq!(
            mongo.latest("ana", p.time_range).await.unwrap().as_ref(),
            Some(p)
        );
    }

    let report = outbox::deliver_pending(pool, mongo).await.unwrap();
    assert_eq!(
        report,
        Delivery {
            delivered: 0,
            failed: 0,
            parked: 0,
            pending: 0
        }
    );
    assert_eq!(count(mongo, HISTORY, doc! {}).await, 3);
    assert_eq!(count(mongo, USER_SYNCS, doc! {}).await, 3);
    finish(app).await;
}

#[tokio::test]
async fn the_outbox_refuses_a_payload_it_could_never_deliver() {
    let app = TestEnv::new().await.spawn().await;
    let pool = &app.state.stores.main;
    let bad = payload("ana", TimeRange::ShortTerm, 1, "yesterday", &["a"]);
    let mut conn = pool.acquire().await.unwrap();
    let err = outbox::enqueue(&mut conn, "1-short_term", &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not RFC 3339"), "{err}");
    assert!(outbox_rows(&app).await.is_empty());
    finish(app).await;
}

#[tokio::test]
async fn a_poison_row_is_parked_and_does_not_block_the_rows_behind_it() {
    let app = TestEnv::new().await.spawn().await;
    let pool = &app.state.stores.main;
    let mongo = &app.state.stores.mongo;
    // The oldest row's payload no longer decodes (as after a change of its shape); good
    // rows wait behind it.
    sqlx::query("INSERT INTO mongo_outbox (snapshot_id, payload) VALUES ('1-short_term', '{\"shape\": \"old\"}')")
        .execute(pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for sync_id in 2..=4 {
        let at = format!("2026-11-2{sync_id}T10:00:00.000Z");
        let p = payload("ana", TimeRange::ShortTerm, sync_id, &at, &["a"]);
        outbox::enqueue(&mut tx, &format!("{sync_id}-short_term"), &p)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let report = outbox::deliver_pending(pool, mongo).await.unwrap();
    assert_eq!(
        report,
        Delivery {
            delivered: 3,
            failed: 1,
            parked: 1,
            pending: 0
        }
    );
    assert_eq!(count(mongo, HISTORY, doc! {}).await, 3);
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1, "only the poison row is left: {rows:?}");
    let (id, attempts, error, parked) = &rows[0];
    assert_eq!((id.as_str(), *attempts, *parked), ("1-short_term", 1, true));
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot be decoded"),
        "{error:?}"
    );
    // Parked: never tried again, and counted where an operator looks.
    let again = outbox::deliver_pending(pool, mongo).await.unwrap();
    assert_eq!((again.delivered, again.failed), (0, 0));
    assert_eq!(outbox_rows(&app).await[0].1, 1);
    let depth = outbox::depth(pool).await.unwrap();
    assert_eq!((depth.pending, depth.parked), (0, 1));
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["outbox"]["parked"], 1, "{ready}");
    assert_eq!(ready["outbox"]["pending"], 0, "{ready}");
    finish(app).await;
}

#[tokio::test]
async fn a_sync_wakes_the_outbox_worker_and_does_not_deliver_itself() {
    let app = TestEnv::new().await.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    // A worker whose tick never comes again after its first: only a wake-up moves it.
    let worker = outbox::spawn_worker(
        app.state.stores.main.clone(),
        app.state.stores.mongo.clone(),
        Duration::from_secs(3600),
        app.state.outbox.clone(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let progress = app
        .state
        .syncs
        .start(
            &app.state,
            user.clone(),
            personalify::server::sync::Trigger::Manual,
        )
        .await
        .unwrap();
    let done = progress.finished().await;
    assert_eq!(done.status, personalify::domain::SyncStatus::Succeeded);
    // Delivered (three documents) and removed from the outbox, within five seconds.
    let mut seen = (0, -1);
    for _ in 0..50 {
        let history = count(
            mongo_of(&app),
            HISTORY,
            doc! { "spotify_id": &user.spotify_id },
        )
        .await;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM mongo_outbox")
            .fetch_one(&app.state.stores.main)
            .await
            .unwrap();
        seen = (history, left);
        if seen == (3, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (3, 0), "(history documents, outbox rows left)");
    worker.abort();
    finish(app).await;
}

fn mongo_of(app: &TestApp) -> &Mongo {
    &app.state.stores.mongo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_deliver_each_row_once() {
    let app = TestEnv::new().await.spawn().await;
    let pool = &app.state.stores.main;
    let mongo = &app.state.stores.mongo;
    // More than two batches, one user and range: the deliverers also race on user_syncs.
    const ROWS: i64 = 250;
    let mut tx = pool.begin().await.unwrap();
    for sync_id in 1..=ROWS {
        let at = chrono::DateTime::from_timestamp(1_795_000_000 + sync_id * 60, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let p = payload("ana", TimeRange::ShortTerm, sync_id, &at, &["a", "b"]);
        outbox::enqueue(&mut tx, &format!("{sync_id}-short_term"), &p)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let (first, second) = tokio::join!(
        outbox::deliver_pending(pool, mongo),
        outbox::deliver_pending(pool, mongo)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        first.delivered + second.delivered,
        ROWS as usize,
        "{first:?} {second:?}"
    );
    assert_eq!(first.failed + second.failed, 0);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM mongo_outbox")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "every row delivered once and removed");
    assert_eq!(count(mongo, HISTORY, doc! {}).await, ROWS as u64);
    // Whatever order they arrived in, the newest is the latest.
    assert_eq!(count(mongo, USER_SYNCS, doc! {}).await, 1);
    let latest = mongo
        .latest("ana", TimeRange::ShortTerm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.sync_id, ROWS);
    finish(app).await;
}

async fn post_history(
    app: &TestApp,
    client: &reqwest::Client,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(app.url("/api/history"))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .expect("request reaches the server")
}

async fn signed_in_user(app: &TestApp) -> (i64, String) {
    sqlx::query_as("SELECT id, spotify_id FROM users")
        .fetch_one(&app.state.stores.main)
        .await
        .expect("one signed-in user")
}

/// Record a finished sync in PostgreSQL, as the sync does: the history reads the
/// snapshots of the syncs the record knows.
async fn record_sync(app: &TestApp, user_id: i64, run_id: i64, finished_at: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(finished_at).unwrap();
    sqlx::query(
        "INSERT INTO sync_runs (id, user_id, trigger, status, started_at, finished_at)
         VALUES ($1, $2, 'manual', 'succeeded', $3, $3)",
    )
    .bind(run_id)
    .bind(user_id)
    .bind(at)
    .execute(&app.state.stores.main)
    .await
    .unwrap();
}

#[tokio::test]
async fn get_history_shows_the_session_users_movement() {
    let app = TestEnv::new().await.spawn().await;
    let browser = app.browser();
    app.demo_sign_in(&browser, None).await;
    let (user_id, me) = signed_in_user(&app).await;
    let mongo = &app.state.stores.mongo;
    let before = payload(
        &me,
        TimeRange::ShortTerm,
        1,
        "2026-11-01T08:00:00.000Z",
        &["a", "b", "c"],
    );
    let now = payload(
        &me,
        TimeRange::ShortTerm,
        2,
        "2026-11-08T08:00:00.000Z",
        &["c", "a", "d"],
    );
    mongo.write_snapshot("1-short_term", &before).await.unwrap();
    mongo.write_snapshot("2-short_term", &now).await.unwrap();
    record_sync(&app, user_id, 1, &before.synced_at).await;
    record_sync(&app, user_id, 2, &now.synced_at).await;
    // Someone else's newer snapshot is not mine.
    let theirs = payload(
        "someone-else",
        TimeRange::ShortTerm,
        3,
        "2026-11-09T08:00:00.000Z",
        &["x"],
    );
    mongo.write_snapshot("3-short_term", &theirs).await.unwrap();

    let response = post_history(&app, &browser, &[("range", "short_term")]).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["changes"]["first_sync"], false);
    assert_eq!(json["changes"]["artists"][0]["id"], "c");
    assert_eq!(json["changes"]["artists"][0]["rank"], 1);
    assert_eq!(json["changes"]["artists"][0]["previous_rank"], 3);
    let view: HistoryView = serde_json::from_value(json).unwrap();
    let moves: Vec<(&str, Movement)> = view
        .changes
        .artists
        .iter()
        .map(|c| (c.id.as_str(), c.movement()))
        .collect();
    assert_eq!(
        moves,
        vec![
            ("c", Movement::Up(2)),
            ("a", Movement::Down(1)),
            ("d", Movement::New),
            ("b", Movement::Left)
        ]
    );
    assert_eq!(view.changes.tracks[0].id, "tc");
    assert_eq!(
        view.history.synced_at,
        vec![before.synced_at.clone(), now.synced_at.clone()]
    );
    assert_eq!(view.history.artists[0].id, "c");
    assert_eq!(view.history.artists[0].points, vec![Some(3), Some(1)]);
    assert_eq!(view.history.artists[2].points, vec![None, Some(3)]);

    // A limit of 1 is raised to the 2 a comparison needs.
    let response = post_history(&app, &browser, &[("range", "short_term"), ("limit", "1")]).await;
    let limited: HistoryView = response.json().await.unwrap();
    assert_eq!(limited.history.synced_at.len(), 2);

    // A range without syncs: nothing to compare, and nothing pretending to be new.
    let response = post_history(&app, &browser, &[("range", "long_term")]).await;
    let empty: HistoryView = response.json().await.unwrap();
    assert!(empty.changes.first_sync);
    assert!(empty.changes.artists.is_empty() && empty.history.synced_at.is_empty());

    // Nobody signed in: no history, and no way to ask for someone's.
    let response = post_history(&app, &app.http, &[("range", "short_term")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "null");
    finish(app).await;
}

#[tokio::test]
async fn get_history_says_so_when_mongodb_is_down() {
    let app = TestEnv::new().await.store_down("MONGODB_URL").spawn().await;
    let browser = app.browser();
    app.demo_sign_in(&browser, None).await;
    // A sync on record, so there is history to read.
    let (user_id, _) = signed_in_user(&app).await;
    record_sync(&app, user_id, 1, "2026-11-01T08:00:00.000Z").await;
    let response = post_history(&app, &browser, &[("range", "short_term")]).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    let body = response.text().await.unwrap();
    assert!(
        body.contains("Sync history is unavailable right now; your top lists still work."),
        "{body}"
    );
    app.shutdown().await;
}
