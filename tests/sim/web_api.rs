//! The Web API's data: top items and their paging, shapes, time travel, determinism,
//! artists, recently played and the images the objects link to.

use super::*;

#[tokio::test]
async fn top_artists_page_to_at_most_99_and_ranges_differ() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let mut top20 = Vec::new();
    for range in ["short_term", "medium_term", "long_term"] {
        let path = format!("/v1/me/top/artists?time_range={range}&limit=50&offset=0");
        let (status, first) = s.get_json(&path, &tokens.access).await;
        assert_eq!(status, StatusCode::OK);
        let total = first["total"].as_u64().expect("total");
        assert!((60..=99).contains(&total), "{range}: {total}");
        assert_eq!(first["limit"], 50);
        assert_eq!(first["offset"], 0);
        assert!(first["previous"].is_null());
        assert_eq!(first["href"], s.url(&path));
        let next = first["next"].as_str().expect("a second page");
        let (status, second) = s.get_json(next, &tokens.access).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(second["offset"], 50);
        assert!(second["next"].is_null(), "{range}: {}", second["next"]);
        assert_eq!(second["previous"], s.url(&path));
        let ids: Vec<String> = item_ids(&first)
            .into_iter()
            .chain(item_ids(&second))
            .collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len() as u64, total);
        assert_eq!(distinct.len(), ids.len());
        top20.push(ids[..20].to_vec());
    }
    assert_ne!(top20[0], top20[1]);
    assert_ne!(top20[1], top20[2]);
    assert_ne!(top20[0], top20[2]);
}

#[tokio::test]
async fn top_tracks_have_spotify_track_shape_and_default_paging() {
    let s = default_sim().await;
    let tokens = s.login(Some("demo-amara")).await;
    let (status, page) = s.get_json("/v1/me/top/tracks", &tokens.access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["limit"], 20);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(20));
    assert!(page["href"]
        .as_str()
        .is_some_and(|h| h.contains("time_range=medium_term")));
    let track = &page["items"][0];
    assert_eq!(track["type"], "track");
    assert_eq!(
        track["uri"],
        format!("spotify:track:{}", track["id"].as_str().expect("id"))
    );
    assert!(track["duration_ms"].as_u64().is_some_and(|d| d > 60_000));
    assert!(track["popularity"].as_u64().is_some());
    assert!(track["preview_url"].is_null());
    assert_eq!(track["album"]["type"], "album");
    assert_eq!(track["album"]["release_date_precision"], "day");
    assert_eq!(track["album"]["images"].as_array().map(Vec::len), Some(3));
    assert_eq!(track["artists"][0]["type"], "artist");
    let (_, rest) = s
        .get_json("/v1/me/top/tracks?limit=50&offset=20", &tokens.access)
        .await;
    let with_feature = [&page, &rest]
        .iter()
        .flat_map(|p| p["items"].as_array().expect("items"))
        .any(|t| t["artists"].as_array().is_some_and(|a| a.len() == 2));
    assert!(with_feature, "some tracks credit a featured artist");
}

#[tokio::test]
async fn bad_paging_parameters_are_400_with_spotify_messages() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let cases = [
        ("limit=0", "Invalid limit"),
        ("limit=51", "Invalid limit"),
        ("limit=x", "Invalid limit"),
        ("time_range=forever", "Invalid time range"),
        ("offset=-1", "Invalid offset"),
        ("offset=x", "Invalid offset"),
    ];
    for (query, message) in cases {
        let (status, body) = s
            .get_json(&format!("/v1/me/top/artists?{query}"), &tokens.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["status"], 400);
        assert_eq!(error_message(&body), message, "{query}");
    }
    let (status, _) = s.get_json("/v1/me/top/albums", &tokens.access).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn full_shape_has_the_optional_fields_and_stripped_shape_omits_the_keys() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let (_, full) = s
        .get_json("/v1/me/top/artists?limit=5", &tokens.access)
        .await;
    let artist = full["items"][0].as_object().expect("artist object");
    for key in ["genres", "popularity", "followers"] {
        assert!(artist.contains_key(key), "full shape lacks {key}");
    }
    assert_eq!(artist["images"].as_array().map(Vec::len), Some(3));
    assert_eq!(artist["images"][0]["height"], 640);

    s.sim.set_stripped(true);
    let (_, stripped) = s
        .get_json("/v1/me/top/artists?limit=5", &tokens.access)
        .await;
    let (_, one) = s
        .get_json(
            &format!("/v1/artists/{}", artist["id"].as_str().expect("id")),
            &tokens.access,
        )
        .await;
    for artist in [&stripped["items"][0], &one] {
        let artist = artist.as_object().expect("artist object");
        for key in ["genres", "popularity", "followers"] {
            assert!(!artist.contains_key(key), "stripped shape has {key}");
        }
        assert!(artist.contains_key("name"));
    }
    let (_, tracks) = s
        .get_json("/v1/me/top/tracks?limit=5", &tokens.access)
        .await;
    assert!(!tracks["items"][0]
        .as_object()
        .expect("track")
        .contains_key("popularity"));
    let (_, me) = s.get_json("/v1/me", &tokens.access).await;
    let me = me.as_object().expect("user object");
    for key in ["country", "email", "product", "followers"] {
        assert!(!me.contains_key(key), "stripped /me has {key}");
    }
    // Same ranking either way: only the shape changes.
    assert_eq!(item_ids(&full), item_ids(&stripped));
}

#[tokio::test]
async fn a_day_later_short_term_moves_and_long_term_mostly_stays() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let short = "/v1/me/top/artists?time_range=short_term&limit=50";
    let long = "/v1/me/top/artists?time_range=long_term&limit=20";
    let (short_before, long_before) = (
        s.ids(short, &tokens.access).await,
        s.ids(long, &tokens.access).await,
    );
    s.sim.advance_days(1);
    let (short_after, long_after) = (
        s.ids(short, &tokens.access).await,
        s.ids(long, &tokens.access).await,
    );
    assert_ne!(short_before, short_after);
    let kept = long_after
        .iter()
        .filter(|id| long_before.contains(id))
        .count();
    assert!(kept >= 15, "only {kept} of the long-term top 20 stayed");
}

#[tokio::test]
async fn same_seed_and_day_give_byte_identical_json() {
    let fixed_base = |c: &mut SimConfig| c.base_url = "http://sim.test".into();
    let (a, b) = (start(fixed_base).await, start(fixed_base).await);
    let other = start(|c| {
        c.base_url = "http://sim.test".into();
        c.seed = 7;
    })
    .await;
    let (ta, tb, to) = (
        a.login(None).await,
        b.login(None).await,
        other.login(None).await,
    );
    for path in [
        "/v1/me",
        "/v1/me/top/artists?limit=50&time_range=short_term",
        "/v1/me/top/tracks?limit=50&offset=10",
        "/v1/me/player/recently-played?limit=50",
    ] {
        let body_a = a.get(path, &ta.access).await.bytes().await.expect("body");
        let body_b = b.get(path, &tb.access).await.bytes().await.expect("body");
        assert_eq!(body_a, body_b, "{path}");
        if path != "/v1/me" {
            let body_other = other
                .get(path, &to.access)
                .await
                .bytes()
                .await
                .expect("body");
            assert_ne!(
                body_a, body_other,
                "{path}: another seed, another catalogue"
            );
        }
    }
}

#[tokio::test]
async fn artist_by_id_is_200_400_or_404() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let id = s
        .ids("/v1/me/top/artists?limit=1", &tokens.access)
        .await
        .remove(0);
    let (status, artist) = s
        .get_json(&format!("/v1/artists/{id}"), &tokens.access)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(artist["id"], id.as_str());
    assert_eq!(artist["type"], "artist");
    assert_eq!(artist["href"], s.url(&format!("/v1/artists/{id}")));
    assert_eq!(artist["uri"], format!("spotify:artist:{id}"));

    let (status, body) = s.get_json("/v1/artists/not-an-id", &tokens.access).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_message(&body), "Invalid base62 id");

    let (status, body) = s
        .get_json("/v1/artists/0000000000000000000000", &tokens.access)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_message(&body), "Resource not found");
}

fn played_at_ms(item: &Value) -> i64 {
    let text = item["played_at"].as_str().expect("played_at");
    assert!(text.ends_with('Z') && text.len() == 24, "{text}");
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .timestamp_millis()
}

#[tokio::test]
async fn recently_played_pages_newest_first_through_the_last_50_plays() {
    let s = default_sim().await;
    let tokens = s.login(Some("demo-sari")).await;
    let (status, first) = s
        .get_json("/v1/me/player/recently-played", &tokens.access)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let items = first["items"].as_array().expect("items");
    assert_eq!(items.len(), 20);
    assert_eq!(first["limit"], 20);
    assert!(items[0]["context"].is_null());
    assert_eq!(items[0]["track"]["type"], "track");
    let times: Vec<i64> = items.iter().map(played_at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(times[0] <= NOW_MS);
    assert_eq!(first["cursors"]["after"], times[0].to_string());
    assert_eq!(first["cursors"]["before"], times[19].to_string());

    // Follow `next` to the end: the last 50 plays, as on Spotify, no repeats.
    let mut all = times.clone();
    let mut next = first["next"].as_str().map(str::to_string);
    while let Some(url) = next {
        let (status, page) = s.get_json(&url, &tokens.access).await;
        assert_eq!(status, StatusCode::OK);
        all.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(played_at_ms),
        );
        next = page["next"].as_str().map(str::to_string);
    }
    assert!(
        all.windows(2).all(|w| w[0] > w[1]),
        "pages continue without overlap"
    );
    assert_eq!(all.len(), 50);
    let expected: Vec<i64> = s
        .sim
        .plays_between("demo-sari", NOW_MS - 7 * 86_400_000, NOW_MS)
        .into_iter()
        .rev()
        .take(50)
        .map(|(_, at)| at)
        .collect();
    assert_eq!(all, expected, "exactly the simulator's newest 50");

    // `after` returns the plays right after the cursor, still newest first.
    let cursor = all[40];
    let (status, page) = s
        .get_json(
            &format!("/v1/me/player/recently-played?limit=20&after={cursor}"),
            &tokens.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after: Vec<i64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(played_at_ms)
        .collect();
    assert_eq!(after, all[20..40].to_vec());
    assert!(page["next"]
        .as_str()
        .is_some_and(|n| n.contains(&format!("after={}", all[20]))));

    let (status, page) = s
        .get_json(
            &format!("/v1/me/player/recently-played?before={}&limit=5", all[30]),
            &tokens.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let before: Vec<i64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(played_at_ms)
        .collect();
    assert_eq!(before, all[31..36].to_vec());

    // The listener plays on: by 10:00 the next morning the newest plays are newer.
    s.sim.advance_by(std::time::Duration::from_secs(14 * 3600));
    let (_, later) = s
        .get_json("/v1/me/player/recently-played?limit=50", &tokens.access)
        .await;
    let newest = later["items"].as_array().map(|i| played_at_ms(&i[0]));
    let played_meanwhile = s
        .sim
        .plays_between("demo-sari", NOW_MS, NOW_MS + 14 * 3_600_000);
    assert!(!played_meanwhile.is_empty(), "she listens in the morning");
    assert_eq!(newest, played_meanwhile.last().map(|(_, at)| *at));
}

#[tokio::test]
async fn recently_played_rejects_both_cursors_and_bad_limits() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let cases = [
        (
            "before=1&after=1",
            "Only one of before or after may be specified",
        ),
        ("limit=0", "Invalid limit"),
        ("limit=51", "Invalid limit"),
    ];
    for (query, message) in cases {
        let (status, body) = s
            .get_json(
                &format!("/v1/me/player/recently-played?{query}"),
                &tokens.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error_message(&body), message);
    }
    let (status, page) = s
        .get_json("/v1/me/player/recently-played?limit=50", &tokens.access)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(50));
    // Nothing after "now": empty page, no cursors.
    let (_, empty) = s
        .get_json(
            &format!("/v1/me/player/recently-played?after={NOW_MS}"),
            &tokens.access,
        )
        .await;
    assert_eq!(empty["items"].as_array().map(Vec::len), Some(0));
    assert!(empty["cursors"].is_null());
    assert!(empty["next"].is_null());
}

#[tokio::test]
async fn image_urls_serve_cacheable_svg() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let (_, page) = s
        .get_json("/v1/me/top/tracks?limit=1", &tokens.access)
        .await;
    let urls = [
        page["items"][0]["album"]["images"][0]["url"]
            .as_str()
            .expect("album image"),
        page["items"][0]["album"]["artists"][0]["href"]
            .as_str()
            .expect("artist href"),
    ];
    let res = s.http.get(urls[0]).send().await.expect("GET image");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.headers()["cache-control"]
        .to_str()
        .is_ok_and(|c| c.contains("max-age")));
    let svg = res.text().await.expect("body");
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");

    let artist_id = urls[1].rsplit('/').next().expect("id");
    let res = s
        .http
        .get(s.url(&format!("/images/artist/{artist_id}.svg")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .http
        .get(s.url("/images/artist/0000000000000000000000.svg"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn crowd_listeners_sign_in_and_have_lists_of_their_own() {
    let s = default_sim().await;
    let listeners = personalify::server::sim::Simulator::listeners();
    assert_eq!(listeners.len(), 4 + 200);
    assert_eq!(listeners[4].id, "demo-crowd-001");
    // demo-crowd-004 has alex's taste (index 8 % 4 == 0) but lists of its own.
    let crowd = s.login(Some("demo-crowd-004")).await;
    let alex = s.login(Some("demo-alex")).await;
    let (status, me) = s.get_json("/v1/me", &crowd.access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], "demo-crowd-004");
    let path = "/v1/me/top/artists?time_range=short_term&limit=20";
    let (theirs, alexs) = (
        s.ids(path, &crowd.access).await,
        s.ids(path, &alex.access).await,
    );
    assert_eq!(theirs.len(), 20);
    assert_ne!(theirs, alexs);
}
