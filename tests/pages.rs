//! What a page costs, pinned down as outcomes: the dashboard is served from one read
//! (Redis, else PostgreSQL) and never asks MongoDB; each page carries its data once, and
//! only what it shows; the history is read from MongoDB once per sync, then from Redis.
//! Speed itself is measured by `make bench-pages`, not here.

mod common;

use common::{TestApp, TestEnv};
use personalify::domain::TimeRange;

/// The resources a server-rendered page hands to hydration: each `__RESOLVED_RESOURCES[i]`
/// assignment's index and JSON text (unescaped from its JavaScript string).
fn hydration_data(html: &str) -> Vec<(usize, String)> {
    let mut resources = Vec::new();
    for part in html.split("__RESOLVED_RESOURCES[").skip(1) {
        let Some((index, rest)) = part.split_once("] = \"") else {
            continue; // the `__RESOLVED_RESOURCES=[]` declaration
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        // The JSON is a JavaScript string literal: read it up to its closing quote.
        let mut json = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        json.push(escaped);
                    }
                }
                '"' => break,
                c => json.push(c),
            }
        }
        resources.push((index, json));
    }
    resources
}

/// Artist rows in the page's top-artists list.
fn shown_artists(html: &str) -> usize {
    html.split("data-testid=\"top-artists\"")
        .nth(1)
        .and_then(|list| list.split("</ol>").next())
        .map_or(0, |list| list.matches("<li").count())
}

async fn two_days_of_syncs(app: &TestApp) -> reqwest::Client {
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    app.sim().advance_days(1);
    app.sync(&user).await;
    browser
}

#[tokio::test]
async fn the_dashboard_is_served_without_mongodb() {
    let app = TestEnv::new().await.spawn().await;
    let browser = two_days_of_syncs(&app).await;
    let mongo = &app.state.stores.mongo;

    // Every range, a few times each, from Redis; then from PostgreSQL with the cache gone.
    let before = mongo.commands_sent();
    for round in 0..2 {
        if round == 1 {
            let cache = &app.state.stores.cache;
            for range in TimeRange::ALL {
                let _: i64 = fred::interfaces::KeysInterface::del(
                    &cache.client,
                    cache.top_key("demo-alex", range),
                )
                .await
                .unwrap();
            }
        }
        for range in TimeRange::ALL {
            let page = app
                .page(&browser, &format!("/dashboard?range={}", range.as_str()))
                .await;
            assert!(shown_artists(&page) > 0, "{range}: the lists are there");
            // Movement is part of the one read: the badges show without the history.
            assert!(
                page.contains("data-testid=\"movement\""),
                "{range}: movement since the previous sync"
            );
        }
    }
    assert_eq!(
        mongo.commands_sent(),
        before,
        "the dashboard sent commands to MongoDB"
    );

    // The counter does see MongoDB reads: the history page reads the snapshots once for
    // the newest sync, and from then on its cached view.
    let history = app.page(&browser, "/history?range=short_term").await;
    assert!(history.contains("data-testid=\"entered-left\""));
    let after_first = mongo.commands_sent();
    assert!(after_first > before, "the history read MongoDB");
    for _ in 0..3 {
        let again = app.page(&browser, "/history?range=short_term").await;
        assert!(again.contains("data-testid=\"entered-left\""));
    }
    assert_eq!(
        mongo.commands_sent(),
        after_first,
        "the history is cached per sync"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn each_page_embeds_its_data_once_and_only_what_it_shows() {
    // Every request rendered afresh (no kept pages), to look at many renders.
    let app = TestEnv::new().await.set("PAGE_CACHE_MB", "0").spawn().await;
    let browser = two_days_of_syncs(&app).await;

    // The server renders a page's tree more than once (Suspense walks it to find its
    // resources); a resource created during such a walk used to be serialized again, so
    // some responses carried the lists two or three times. Ask often enough to catch it.
    for _ in 0..20 {
        let page = app.page(&browser, "/dashboard?range=short_term").await;
        let resources = hydration_data(&page);
        let indices: Vec<usize> = resources.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, [0, 1], "the viewer and the lists, once each");
        assert_eq!(
            page.matches("\\\"artists\\\":[").count(),
            1,
            "the lists are embedded once"
        );
        // The lists' data is exactly the rows shown, and no field the page does not use.
        let lists: serde_json::Value = serde_json::from_str(&resources[1].1).unwrap();
        let artists = lists["Ok"]["lists"]["artists"].as_array().unwrap();
        assert_eq!(artists.len(), shown_artists(&page));
        for unshown in ["popularity", "duration_ms", "spotify_id", "album\""] {
            assert!(
                !resources[1].1.contains(unshown),
                "{unshown} is sent but not shown"
            );
        }
        // A chart is a URL the browser fetches when it scrolls near, not its option inline.
        assert!(page.contains("data-chart-src=\"/charts/genres?range=short_term&amp;sync="));
        assert!(!page.contains("\"series\""), "no chart option in the page");
    }

    let history = app.page(&browser, "/history?range=short_term").await;
    let resources = hydration_data(&history);
    assert_eq!(resources.len(), 1, "the history, once");
    assert!(
        !history.contains("\"series\""),
        "no chart option in the page"
    );
    assert_eq!(
        history.matches("data-chart-src=\"/charts/history?").count(),
        2
    );
    app.shutdown().await;
}

#[tokio::test]
async fn chart_urls_answer_the_signed_in_person_only() {
    let app = TestEnv::new().await.spawn().await;
    let browser = two_days_of_syncs(&app).await;
    let page = app.page(&browser, "/dashboard?range=medium_term").await;
    let src = page
        .split("data-chart-src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a genre chart")
        .replace("&amp;", "&");

    let response = browser.get(app.url(&src)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // The URL names its sync, so the browser may keep the answer.
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cache.contains("immutable"), "{cache}");
    let option: serde_json::Value = response.json().await.unwrap();
    assert_eq!(option["series"][0]["type"], "pie");

    // Somebody else's browser (no session) gets no chart, and nothing is kept.
    let anonymous = app.http.get(app.url(&src)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // A stale sync in the URL still draws the current chart, which is not kept.
    let stale = browser
        .get(app.url("/charts/genres?range=medium_term&sync=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["cache-control"], "no-store");
    // Bad input is a 400 that says what is wrong.
    for bad in [
        "/charts/genres?range=forever",
        "/charts/history?range=short_term&list=albums",
    ] {
        let response = browser.get(app.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert!(response.text().await.unwrap().contains("must be"), "{bad}");
    }
    let missing = browser
        .get(app.url("/charts/artist/0000000000000000000000?sync=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.shutdown().await;
}

/// `html` with the random nonce Leptos writes into every page's scripts (for a CSP, which
/// Personalify does not send) replaced by a fixed one, so two renders compare equal.
fn without_nonces(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let next = |s: &str| {
        [s.find("nonce=\""), s.find("crossorigin=\"")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(at) = next(rest) {
        let (head, tail) = rest.split_at(at);
        let open = tail.find('"').map_or(0, |i| i + 1);
        out.push_str(head);
        out.push_str(&tail[..open]);
        out.push_str("NONCE");
        let tail = &tail[open..];
        rest = &tail[tail.find('"').unwrap_or(0)..];
    }
    out.push_str(rest);
    out
}

/// `body` as sent with `Content-Encoding: br`, decoded.
fn unbrotli(body: &[u8]) -> String {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &body[..], &mut out).expect("brotli");
    String::from_utf8(out).expect("UTF-8")
}

#[tokio::test]
async fn a_kept_page_is_the_fresh_render_for_its_owner_only_and_ends_with_the_sync() {
    use personalify::server::auth::session;
    let env = TestEnv::new().await;
    let app = env.clone().spawn().await;
    let (_, alex_user) = app.signed_in(None).await;
    app.sync(&alex_user).await;
    let (sari, sari_user) = app.signed_in(Some("demo-sari")).await;
    app.sync(&sari_user).await;
    // Alex's session cookie, sent by hand so it can be sent again after signing out.
    let token = session::create(&app.state.stores.main, alex_user.user_id)
        .await
        .unwrap();
    let cookie = format!("{}={token}", session::SESSION_COOKIE);
    let get = |base: String, encoding: Option<&'static str>| {
        let mut request = app.http.get(format!("{base}/dashboard?range=medium_term"));
        request = request.header("cookie", cookie.clone());
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        async move { request.send().await.unwrap() }
    };
    let text = |response: reqwest::Response| async move { response.text().await.unwrap() };

    let first = text(get(app.base.clone(), None).await).await;
    assert!(first.contains("Alex Rivera"));
    assert_eq!(app.state.pages.len(), 1, "rendered once and kept");
    assert_eq!(
        text(get(app.base.clone(), None).await).await,
        first,
        "served as kept"
    );
    assert_eq!(app.state.pages.len(), 1);

    // The same page from a server on the same stores that keeps nothing: identical.
    let fresh_server = env.clone().set("PAGE_CACHE_MB", "0").spawn().await;
    let fresh = text(get(fresh_server.base.clone(), None).await).await;
    assert_ne!(fresh, first, "each render has its own nonce");
    assert_eq!(
        without_nonces(&fresh),
        without_nonces(&first),
        "a kept page is what a render gives"
    );
    assert!(fresh_server.state.pages.is_empty());

    // Compressed once, decoded to the same page.
    let br = get(app.base.clone(), Some("gzip, deflate, br, zstd")).await;
    assert_eq!(br.headers()["content-encoding"], "br");
    assert_eq!(br.headers()["vary"], "accept-encoding");
    assert_eq!(unbrotli(&br.bytes().await.unwrap()), first);

    // Another person gets their own page, never Alex's.
    let theirs = app.page(&sari, "/dashboard?range=medium_term").await;
    assert!(!theirs.contains("Alex Rivera"));
    assert!(
        theirs.contains("data-testid=\"viewer-name\">Sari"),
        "Sari's own page"
    );
    assert_eq!(app.state.pages.len(), 2);

    // A new sync: a new page; the old one is not served again.
    app.sim().advance_days(1);
    app.sync(&alex_user).await;
    let after = text(get(app.base.clone(), None).await).await;
    assert_ne!(after, first);
    assert_eq!(app.state.pages.len(), 3);

    // Signed out: nothing of Alex's on the old cookie.
    let logout = app
        .http
        .post(app.url("/auth/logout"))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    let signed_out = text(get(app.base.clone(), None).await).await;
    assert!(
        !signed_out.contains("Alex Rivera"),
        "no page of Alex's after signing out"
    );
    assert!(signed_out.contains("Sign in to see your top artists"));
    fresh_server.shutdown().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_another_router_does_not_stall_pages_being_rendered() {
    // Listing the routes renders the app under a flag global to the process; a resource
    // first polled meanwhile, in any page of any app in the process, waited forever
    // (leptos-rs/leptos#4773). Tests run many apps in one process, so every app building its
    // router used to hang another test's page now and then. Routes are listed once now.
    let app = TestEnv::new()
        .await
        .set("PAGE_CACHE_MB", "0")
        .set("REQUEST_TIMEOUT_SECS", "5")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    // Routers are built, one after another, for as long as the pages are being asked for
    // (so the two overlap whatever the machine's speed).
    let state = app.state.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let building = tokio::task::spawn_blocking(move || {
        let mut built = 0u32;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            drop(personalify::server::startup::router(state.clone()));
            built += 1;
        }
        built
    });
    let mut stalled = 0;
    const PAGES: u32 = 30;
    for _ in 0..PAGES {
        let response = browser
            .get(app.url("/dashboard"))
            .send()
            .await
            .expect("an answer");
        let text = response.text().await.unwrap_or_default();
        if !text.contains("href=\"/artist/") {
            stalled += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let built = building.await.expect("routers built");
    assert_eq!(stalled, 0, "{stalled} of {PAGES} pages stalled");
    assert!(
        built > 0,
        "routers were built while the pages were rendered"
    );
    app.shutdown().await;
}
