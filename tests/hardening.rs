//! What a long-running instance meets outside the happy path (issue #11, part 0): names
//! from Spotify that carry markup, malformed and oversized server-function input, request
//! lines and headers beyond limits, clients that never finish a request, a stored token no
//! key can open, a restart in demo mode, and a MongoDB that accepts and stops answering.

mod common;

use common::{raw_exchange, silent_listener, url_addr, PausableProxy, TestApp, TestEnv};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Pieces of the simulator's hostile names that must never reach a page as markup.
const INJECTIONS: [&str; 4] = [
    "<script>alert(",
    "<img src=x onerror",
    "</title><script>",
    "<b>Friends</b>",
];

fn assert_escaped(what: &str, html: &str) {
    for raw in INJECTIONS {
        if let Some(at) = html.find(raw) {
            let context: String = html[at..].chars().take(80).collect();
            panic!("{what} carries {raw:?} unescaped: {context}");
        }
    }
}

/// The artist ids a page links to, in order of appearance, without repeats.
fn artist_links(html: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    html.split("href=\"/artist/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|id| seen.insert(id.to_string()))
        .map(str::to_string)
        .collect()
}

fn title(html: &str) -> &str {
    let start = html.find("<title>").expect("a <title>") + "<title>".len();
    let end = start + html[start..].find("</title>").expect("</title>");
    &html[start..end]
}

#[tokio::test]
async fn hostile_names_from_spotify_are_escaped_on_every_page() {
    let app = TestEnv::new()
        .await
        .set("DEMO_HOSTILE_NAMES", "true")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    let first = app.sync(&user).await;
    assert_eq!(first.status, personalify::domain::SyncStatus::Succeeded);
    // A second sync gives the history and the movement badges something to show.
    app.sync(&user).await;

    let dashboard = app.page(&browser, "/dashboard").await;
    assert!(
        dashboard.contains("data-testid=\"top-artists\""),
        "the dashboard renders its lists"
    );
    assert!(
        dashboard.contains("&lt;/title&gt;&lt;script&gt;")
            || dashboard.contains("\\u003c/title>")
            || dashboard.contains("&lt;/title>"),
        "the hostile names are on the page, escaped"
    );
    assert_escaped("/dashboard", &dashboard);
    for range in ["short_term", "medium_term", "long_term"] {
        let page = app
            .page(&browser, &format!("/dashboard?range={range}"))
            .await;
        assert_escaped(&format!("/dashboard?range={range}"), &page);
        let history = app.page(&browser, &format!("/history?range={range}")).await;
        assert_escaped(&format!("/history?range={range}"), &history);
        for (chart, option) in common::chart_options(&app, &browser, &history).await {
            // JSON, decoded by the browser's code: the names arrive as data, whole.
            assert!(
                option.to_string().contains("alert("),
                "{chart}: the chart carries the names as data"
            );
        }
    }

    let artists = artist_links(&dashboard);
    assert!(artists.len() >= 10, "the dashboard links its artists");
    let mut titles_with_markup = 0;
    for id in &artists {
        let page = app.page(&browser, &format!("/artist/{id}")).await;
        assert_escaped(&format!("/artist/{id}"), &page);
        let title = title(&page);
        assert!(title.ends_with(" · Personalify"), "{id}: title {title:?}");
        assert!(!title.contains('<'), "{id}: title {title:?} holds markup");
        if title.contains("&lt;/title&gt;&lt;script&gt;") {
            titles_with_markup += 1;
        }
        for (chart, option) in common::chart_options(&app, &browser, &page).await {
            assert!(option.is_object(), "{id}: chart {chart} is JSON");
        }
    }
    assert!(
        titles_with_markup > 0,
        "an artist whose name closes <title> was rendered with the name escaped in its title"
    );
    app.shutdown().await;
}

/// The `'sha256-…'` sources of a Content-Security-Policy.
fn csp_hashes(csp: &str) -> BTreeSet<String> {
    csp.split_whitespace()
        .filter_map(|source| source.strip_prefix("'sha256-"))
        .map(|hash| hash.trim_end_matches([';', '\'']).to_string())
        .collect()
}

/// Each inline `<script>` of a page (no `src`): its opening tag and its text.
fn inline_scripts(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for piece in html.split("<script").skip(1) {
        let Some((attributes, rest)) = piece.split_once('>') else {
            continue;
        };
        let body = rest.split("</script>").next().unwrap_or_default();
        if !attributes.contains(" src=") && !body.is_empty() {
            out.push((attributes.to_string(), body.to_string()));
        }
    }
    out
}

fn sha256(text: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn the_csp_allows_the_renderers_inline_scripts_and_no_other() {
    use axum::response::Html;
    use personalify::server::security::{self, ScriptNonce};
    use tower::ServiceExt;
    let app = TestEnv::new()
        .await
        .set("DEMO_HOSTILE_NAMES", "true")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    // Pages with the hostile names, a page without a session's data, and a 404 (the
    // error handler renders it).
    for path in [
        "/",
        "/dashboard",
        "/history?range=short_term",
        "/listening",
        "/no-such-page",
    ] {
        let response = browser.get(app.url(path)).send().await.expect("answer");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .expect("text")
            .to_string();
        let html = response.text().await.expect("page");
        let scripts = inline_scripts(&html);
        assert!(!scripts.is_empty(), "{path}: the hydration script at least");
        // Every inline script is the renderer's, marked with this response's nonce, and
        // the policy allows exactly those.
        let nonce = scripts[0]
            .0
            .split("nonce=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{path}: the first script has no nonce: {:?}", scripts[0].0));
        for (tag, _) in &scripts {
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: <script{tag}>"
            );
        }
        let expected: BTreeSet<String> = scripts.iter().map(|(_, body)| sha256(body)).collect();
        assert_eq!(csp_hashes(&csp), expected, "{path}: {csp}");
    }

    // A page holding a script the renderer did not emit: a name some code path let
    // through unescaped (leptos_meta writes <title> text as it is given).
    let state = app.state.clone();
    let page = axum::Router::new()
        .route(
            "/injected",
            axum::routing::get(|nonce: axum::Extension<ScriptNonce>| async move {
                Html(format!(
                    "<!DOCTYPE html><html><head><title></title><script>alert('title')</script> · Personalify</title>\
                     <script nonce=\"{}\">hydrate()</script></head><body></body></html>",
                    nonce.0 .0
                ))
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state);
    let response = page
        .oneshot(
            axum::http::Request::get("/injected")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        csp_hashes(&csp),
        BTreeSet::from([sha256("hydrate()")]),
        "only the renderer's script: {csp}"
    );
    assert!(!csp.contains(&sha256("alert('title')")), "{csp}");
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_server_function_input_is_a_400_and_oversize_a_413() {
    let app = TestEnv::new().await.spawn().await;
    let http = reqwest::Client::new();
    let post = |body: reqwest::Body| {
        http.post(app.url("/api/top"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    for (what, body) in [
        ("no body", ""),
        ("malformed", "%%%=&&=="),
        ("wrong field", "nothing=here"),
    ] {
        let response = post(body.into()).await.expect("answer");
        assert_eq!(response.status(), 400, "{what}");
        let text = response.text().await.expect("body");
        assert!(
            text.contains("missing or malformed"),
            "{what}: a plain message, not the parser's: {text}"
        );
        assert!(!text.contains("missing field"), "{what}: {text}");
    }

    let big = vec![b'a'; 3 * 1024 * 1024];
    let response = post(big.clone().into()).await.expect("answer");
    assert_eq!(response.status(), 413, "3 MB with a length");
    let text = response.text().await.expect("body");
    assert!(text.contains("too large"), "{text}");

    // The same without a Content-Length (chunked): read up to the limit, then refused.
    let mut chunked = b"POST /api/top HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..48 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&[b'a'; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (answer, _) = raw_exchange(&app.base, &chunked, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "3 MB chunked: {answer:.80}"
    );

    // A well-formed call still works (not signed in: 401 with its own message).
    let response = post("range=short_term".into()).await.expect("answer");
    assert_eq!(response.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn long_request_lines_and_large_headers_answer_at_once() {
    let app = TestEnv::new().await.spawn().await;
    let within = Duration::from_secs(5);

    let cases = [
        (
            "10 KB query",
            format!(
                "GET /dashboard?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(10 * 1024)
            ),
            "HTTP/1.1 414",
        ),
        (
            "40 KB cookie",
            format!(
                "GET /dashboard HTTP/1.1\r\nHost: x\r\nCookie: a={}\r\n\r\n",
                "b".repeat(40 * 1024)
            ),
            "HTTP/1.1 431",
        ),
        (
            "200 KB header",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
                "c".repeat(200 * 1024)
            ),
            "HTTP/1.1 431",
        ),
        // Under the limits, a long query still gets the page.
        (
            "6 KB query",
            format!(
                "GET /?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "d".repeat(6 * 1024)
            ),
            "HTTP/1.1 200",
        ),
    ];
    for (what, request, status) in cases {
        let (answer, _) = raw_exchange(&app.base, request.as_bytes(), within).await;
        assert!(answer.starts_with(status), "{what}: {answer:.80}");
        if status.ends_with("414") {
            assert!(answer.contains("too long"), "{answer}");
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = TestEnv::new()
        .await
        .set("HEADER_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    let started = Instant::now();
    let (answer, closed) = raw_exchange(
        &app.base,
        b"GET /dashboard HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(20),
    )
    .await;
    assert!(closed, "the server closed the connection");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed at the header deadline, not left open ({:?})",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:.80}"
    );
    // The server goes on serving.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_drops_requests_still_open_at_its_deadline() {
    let app = TestEnv::new()
        .await
        .set("SHUTDOWN_TIMEOUT_SECS", "1")
        .set("HEADER_TIMEOUT_SECS", "120")
        .spawn()
        .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // A request whose headers never end holds its connection open.
    let mut held = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut held, b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the server stopped at its 1 s deadline ({:?})",
        started.elapsed()
    );
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut held, &mut buf),
    )
    .await
    .expect("the held connection was closed");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
}

#[tokio::test]
async fn an_unreadable_stored_token_asks_to_sign_in_again() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    sqlx::query("UPDATE spotify_tokens SET access_token = '\\x00112233'::bytea, refresh_token = '\\x44556677'::bytea WHERE user_id = $1")
        .bind(user.user_id)
        .execute(&app.state.stores.main)
        .await
        .expect("corrupt the stored token");
    let outcome = app.sync(&user).await;
    assert_eq!(outcome.status, personalify::domain::SyncStatus::Failed);
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("sign in again"), "{error}");
    assert!(
        !error.contains("unreadable") && !error.contains("decrypt"),
        "{error}"
    );
    let needs_relogin: bool =
        sqlx::query_scalar("SELECT needs_relogin FROM spotify_tokens WHERE user_id = $1")
            .bind(user.user_id)
            .fetch_one(&app.state.stores.main)
            .await
            .expect("token row");
    assert!(needs_relogin, "the connection is marked for a new sign-in");
    let page = app.page(&browser, "/dashboard").await;
    assert!(page.contains("sign in again"), "the dashboard says so");
    app.shutdown().await;
}

#[tokio::test]
async fn demo_listeners_sync_after_a_restart() {
    let app = TestEnv::new().await.spawn().await;
    let (_browser, user) = app.signed_in(None).await;
    assert_eq!(
        app.sync(&user).await.status,
        personalify::domain::SyncStatus::Succeeded
    );
    // A new process: a new simulator (it forgot its tokens) and, without
    // TOKEN_ENCRYPTION_KEYS, a new start-up key (the stored tokens cannot be opened).
    let env = app.stop().await;
    let app = env.spawn().await;
    let outcome = app.sync(&user).await;
    assert_eq!(
        outcome.status,
        personalify::domain::SyncStatus::Succeeded,
        "{:?}",
        outcome.error
    );
    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_runs WHERE user_id = $1 AND status = 'succeeded'",
    )
    .bind(user.user_id)
    .fetch_one(&app.state.stores.main)
    .await
    .expect("count");
    assert_eq!(runs, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_mongodb_that_stops_answering_does_not_hang_pages() {
    let env = TestEnv::new().await;
    let proxy = PausableProxy::start(url_addr(&env.vars["MONGODB_URL"])).await;
    let app = env
        .set(
            "MONGODB_URL",
            format!("mongodb://127.0.0.1:{}/?directConnection=true", proxy.port),
        )
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    assert!(app.page(&browser, "/history").await.contains("history"));

    proxy.pause();
    // A sync while MongoDB is silent: the record is PostgreSQL; the history waits.
    let started = Instant::now();
    let outcome = app.sync(&user).await;
    assert_eq!(outcome.status, personalify::domain::SyncStatus::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the sync did not wait on MongoDB past its deadline ({:?})",
        started.elapsed()
    );
    // The driver notices a silent server itself only at its next heartbeat (~10 s), which
    // is how long pages used to wait.
    for path in ["/dashboard", "/history", "/artist/unknown0000000000000"] {
        let started = Instant::now();
        let response = browser.get(app.url(path)).send().await.expect("answer");
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert!(
            elapsed < Duration::from_secs(6),
            "{path} answered within MongoDB's 3 s deadline plus a margin ({elapsed:?})"
        );
        assert!(status == 200 || status == 404, "{path}: {status}");
        if path == "/history" {
            assert!(
                text.contains("history is unavailable right now"),
                "/history says the history is unavailable"
            );
        }
    }
    proxy.resume().await;
    app.shutdown().await;
}

/// GET `path` and say how long it took, its status and its text.
async fn timed(app: &TestApp, browser: &reqwest::Client, path: &str) -> (Duration, u16, String) {
    let started = Instant::now();
    let response = browser.get(app.url(path)).send().await.expect("answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (started.elapsed(), status, text)
}

#[tokio::test]
async fn a_redis_that_stops_answering_does_not_hang_pages_or_syncs() {
    let env = TestEnv::new().await;
    let proxy = PausableProxy::start(url_addr(&env.vars["REDIS_URL"])).await;
    let app = env
        .set("REDIS_URL", format!("redis://127.0.0.1:{}", proxy.port))
        .set("SESSION_CACHE_SECS", "0")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    let dashboard = app.page(&browser, "/dashboard").await;
    let artist = artist_links(&dashboard)
        .into_iter()
        .next()
        .expect("the dashboard links an artist");

    proxy.pause();
    let started = Instant::now();
    let outcome = app.sync(&user).await;
    assert_eq!(outcome.status, personalify::domain::SyncStatus::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the sync did not wait on Redis past its deadline ({:?})",
        started.elapsed()
    );
    let artist_path = format!("/artist/{artist}");
    for path in ["/dashboard", "/history", artist_path.as_str()] {
        let (elapsed, status, text) = timed(&app, &browser, path).await;
        assert!(
            elapsed < Duration::from_secs(4),
            "{path} answered within Redis's 1 s deadline plus a margin ({elapsed:?})"
        );
        assert_eq!(status, 200, "{path}");
        assert!(!text.contains("Sign in"), "{path} still knows the session");
    }
    let (elapsed, status, _) = timed(&app, &browser, "/readyz").await;
    assert!(elapsed < Duration::from_secs(4), "/readyz took {elapsed:?}");
    assert_eq!(status, 503, "/readyz reports Redis down");
    // A new visitor can still sign in.
    let started = Instant::now();
    let fresh = app.browser();
    let signed = app.demo_sign_in(&fresh, None).await;
    assert_eq!(signed.response.status(), 303);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "sign-in took {:?}",
        started.elapsed()
    );
    proxy.resume().await;
    app.shutdown().await;
}

#[tokio::test]
async fn stores_that_accept_and_never_answer_do_not_hang_start_up_or_pages() {
    let (mongo, redis) = (silent_listener().await, silent_listener().await);
    let started = Instant::now();
    let app = TestEnv::new()
        .await
        .set(
            "MONGODB_URL",
            format!("mongodb://127.0.0.1:{mongo}/?directConnection=true"),
        )
        .set("REDIS_URL", format!("redis://127.0.0.1:{redis}"))
        .set("STARTUP_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "start-up took {:?}",
        started.elapsed()
    );
    let (browser, user) = app.signed_in(None).await;
    let started = Instant::now();
    let outcome = app.sync(&user).await;
    assert_eq!(outcome.status, personalify::domain::SyncStatus::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "sync and outbox round took {:?}",
        started.elapsed()
    );
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM mongo_outbox")
        .fetch_one(&app.state.stores.main)
        .await
        .expect("count");
    assert_eq!(pending, 3, "the history waits in the outbox");
    let (elapsed, status, text) = timed(&app, &browser, "/dashboard").await;
    assert!(
        elapsed < Duration::from_secs(4),
        "/dashboard took {elapsed:?}"
    );
    assert_eq!(status, 200);
    assert!(
        text.contains("href=\"/artist/"),
        "the dashboard shows the lists"
    );
    let (elapsed, status, text) = timed(&app, &browser, "/history").await;
    assert!(
        elapsed < Duration::from_secs(6),
        "/history took {elapsed:?}"
    );
    assert_eq!(status, 200);
    assert!(text.contains("history is unavailable right now"));
    let (elapsed, status, text) = timed(&app, &browser, "/readyz").await;
    assert!(elapsed < Duration::from_secs(4), "/readyz took {elapsed:?}");
    assert_eq!(status, 503);
    assert!(
        text.contains("\"mongo\"") && text.contains("\"redis\""),
        "{text}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_token_endpoint_does_not_drain_the_pool() {
    let app = TestEnv::new()
        .await
        .set("SPOTIFY_TIMEOUT_SECS", "30")
        // Every page asks PostgreSQL for the session: a drained pool would show.
        .set("SESSION_CACHE_SECS", "0")
        .spawn()
        .await;
    let mut listeners = Vec::new();
    for demo in personalify::server::sim::Simulator::demo_users() {
        let (browser, user) = app.signed_in(Some(demo.id)).await;
        assert_eq!(
            app.sync(&user).await.status,
            personalify::domain::SyncStatus::Succeeded
        );
        listeners.push((browser, user));
    }
    assert_eq!(listeners.len(), 4);
    // Spotify's token endpoint takes 20 s, and every access token needs refreshing: each
    // sync's six requests want a refresh at once, 24 in all, against a pool of 10.
    app.sim().set_token_latency(Duration::from_secs(20));
    app.sim().expire_access_tokens();
    let refreshes_before = app.sim().request_count("/api/token");
    let mut syncs = Vec::new();
    for (_, user) in &listeners {
        let started = app
            .state
            .syncs
            .start(
                &app.state,
                user.clone(),
                personalify::server::sync::Trigger::Manual,
            )
            .await
            .expect("sync starts");
        syncs.push(started);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let browser = &listeners[0].0;
    for _ in 0..8 {
        let (elapsed, status, text) = timed(&app, browser, "/dashboard").await;
        assert!(
            elapsed < Duration::from_secs(1),
            "/dashboard took {elapsed:?} while tokens refresh"
        );
        assert_eq!(status, 200);
        assert!(
            text.contains("href=\"/artist/"),
            "the dashboard shows the lists"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    for started in syncs {
        let done = tokio::time::timeout(Duration::from_secs(60), started.finished())
            .await
            .expect("the sync ends");
        assert_eq!(
            done.status,
            personalify::domain::SyncStatus::Succeeded,
            "{done:?}"
        );
    }
    assert_eq!(
        app.sim().request_count("/api/token") - refreshes_before,
        4,
        "one refresh per user, however many requests wanted one"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_sync_past_its_deadline_is_stopped_and_writes_nothing() {
    let app = TestEnv::new()
        .await
        .set("SYNC_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    let (_browser, user) = app.signed_in(None).await;
    app.sim().set_latency(Duration::from_secs(3));
    let started = Instant::now();
    let done = app.sync(&user).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the sync was cut off at its deadline ({:?})",
        started.elapsed()
    );
    assert_eq!(done.status, personalify::domain::SyncStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(error.contains("took longer than 1 seconds"), "{error}");
    let (status, recorded): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM sync_runs WHERE id = $1")
            .bind(done.run_id)
            .fetch_one(&app.state.stores.main)
            .await
            .expect("the run is recorded");
    assert_eq!(status, "failed");
    assert_eq!(recorded.as_deref(), Some(error.as_str()));
    let lists: i64 = sqlx::query_scalar("SELECT count(*) FROM user_artists")
        .fetch_one(&app.state.stores.main)
        .await
        .expect("count");
    assert_eq!(lists, 0, "nothing of the stopped sync is written");
    // The server side bounds statements and forgotten transactions on every pooled
    // connection.
    let mut conn = app.state.stores.main.acquire().await.expect("connection");
    let statement: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut *conn)
        .await
        .expect("show");
    let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(&mut *conn)
        .await
        .expect("show");
    assert_eq!((statement.as_str(), idle.as_str()), ("30s", "1min"));
    drop(conn);
    app.sim().set_latency(Duration::ZERO);
    app.shutdown().await;
}

#[tokio::test]
async fn over_https_the_session_cookie_is_host_prefixed_and_secure() {
    const PUBLIC: &str = "https://music.example.test";
    let app = TestEnv::new().await.set("PUBLIC_URL", PUBLIC).spawn().await;
    // The browser would reach us at PUBLIC; this test reaches the same server directly, and
    // carries cookies by hand (a cookie jar keeps Secure cookies off plain http).
    let local = |url: &str| url.replacen(PUBLIC, &app.base, 1);
    let set_cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("text").to_string())
            .collect()
    };
    let start = app.get("/auth/demo").await;
    assert_eq!(start.status(), 303);
    let state_cookie = set_cookies(&start)
        .into_iter()
        .next()
        .expect("a state cookie");
    assert!(
        state_cookie.starts_with("__Secure-pfy_oauth="),
        "{state_cookie}"
    );
    assert!(state_cookie.contains("Secure"), "{state_cookie}");
    let consent = app
        .http
        .get(local(&common::location(&start)))
        .send()
        .await
        .expect("authorize");
    assert_eq!(consent.status(), 303);
    let pair = state_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let callback = app
        .http
        .get(local(&common::location(&consent)))
        .header("cookie", &pair)
        .send()
        .await
        .expect("callback");
    assert_eq!(callback.status(), 303, "signed in");
    let session = set_cookies(&callback)
        .into_iter()
        .find(|c| c.contains("pfy_session="))
        .expect("a session cookie");
    assert!(session.starts_with("__Host-pfy_session="), "{session}");
    assert!(
        session.contains("Secure") && session.contains("Path=/"),
        "{session}"
    );
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "{session}"
    );
    let token = session
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("a token");
    let viewer = |cookie: String| {
        let http = app.http.clone();
        let url = app.url("/api/viewer");
        async move {
            let response = http
                .post(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("answer");
            response.json::<serde_json::Value>().await.expect("json")
        }
    };
    assert!(viewer(format!("__Host-pfy_session={token}"))
        .await
        .is_object());
    assert!(
        viewer(format!("pfy_session={token}")).await.is_null(),
        "the plain-http cookie name is not honoured over https"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_responses_carry_security_headers() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, _user) = app.signed_in(None).await;
    let post = |site: &'static str, origin: &'static str| {
        let mut request = browser.post(app.url("/api/sync")).body("");
        if !site.is_empty() {
            request = request.header("sec-fetch-site", site);
        }
        if !origin.is_empty() {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for (site, origin) in [
        ("cross-site", ""),
        ("same-site", ""),
        ("", "http://evil.test"),
    ] {
        let response = post(site, origin).await.expect("answer");
        assert_eq!(response.status(), 403, "{site} {origin}");
        let text = response.text().await.expect("body");
        assert!(text.contains("another site"), "{text}");
    }
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&app.state.stores.main)
        .await
        .expect("count");
    assert_eq!(running, 0, "no refused request started a sync");
    let same = post("same-origin", "").await.expect("answer");
    assert_eq!(same.status(), 200, "the page's own request starts a sync");

    let page = browser
        .get(app.url("/dashboard"))
        .send()
        .await
        .expect("page");
    let headers = page.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().expect("text");
    assert!(
        csp.contains("'sha256-") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    assert!(
        headers.get("strict-transport-security").is_none(),
        "no HSTS over http"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_background_task_that_stops_is_restarted_and_shown() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let app = TestEnv::new().await.spawn().await;
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    // Panics on its first run, returns on its second, then runs on.
    app.state.tasks.supervise(
        "flaky",
        move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match run {
                    0 => panic!("a bug in a background task"),
                    1 => {}
                    _ => std::future::pending::<()>().await,
                }
            }
        },
        || true,
    );
    let mut flaky = None;
    for _ in 0..60 {
        let ready: serde_json::Value = app.get("/readyz").await.json().await.expect("json");
        flaky = ready["tasks"]
            .as_array()
            .and_then(|tasks| tasks.iter().find(|t| t["name"] == "flaky").cloned());
        if flaky
            .as_ref()
            .is_some_and(|t| t["restarts"] == 2 && t["running"] == true)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Restarted after 1 s, then after 2 s.
    assert_eq!(
        flaky,
        Some(serde_json::json!({"name": "flaky", "running": true, "restarts": 2}))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("personalify_task_restarts_total{task=\"flaky\"} 2"),
        "{metrics}"
    );
    app.shutdown().await;
}

/// The value of one sample line of a Prometheus exposition (0 when absent).
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_syncs_spotify_and_the_outbox() {
    let app = TestEnv::new().await.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    let before = app.get("/metrics").await.text().await.expect("text");
    app.sim().rate_limit_next(1, 1);
    assert_eq!(
        app.sync(&user).await.status,
        personalify::domain::SyncStatus::Succeeded
    );
    for _ in 0..3 {
        assert_eq!(
            browser
                .get(app.url("/dashboard"))
                .send()
                .await
                .expect("page")
                .status(),
            200
        );
    }
    // One snapshot left waiting: its row is back in the outbox.
    sqlx::query("INSERT INTO mongo_outbox (snapshot_id, payload) VALUES ('x', '{}')")
        .execute(&app.state.stores.main)
        .await
        .expect("insert");
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("text")
        .starts_with("text/plain; version=0.0.4"));
    let after = response.text().await.expect("text");
    let grew = |line: &str| sample(&after, line) - sample(&before, line);
    assert!(grew("personalify_http_requests_total{route=\"/dashboard\",status=\"200\"}") >= 3.0);
    assert!(grew("personalify_http_request_duration_seconds_count{route=\"/dashboard\"}") >= 3.0);
    assert!(grew("personalify_sync_runs_total{outcome=\"succeeded\"}") >= 1.0);
    assert!(
        grew("personalify_spotify_calls_total") >= 12.0,
        "a sync's calls"
    );
    assert!(
        grew("personalify_spotify_rate_limited_total") >= 1.0,
        "the 429"
    );
    assert_eq!(sample(&after, "personalify_outbox_pending"), 1.0);
    assert_eq!(sample(&after, "personalify_outbox_parked"), 0.0);
    // Buckets are cumulative and end at the count.
    let count = sample(
        &after,
        "personalify_http_request_duration_seconds_count{route=\"/dashboard\"}",
    );
    let inf = sample(
        &after,
        "personalify_http_request_duration_seconds_bucket{route=\"/dashboard\",le=\"+Inf\"}",
    );
    assert_eq!(count, inf);
    app.shutdown().await;
}

/// A test environment whose app reaches PostgreSQL `main` through a proxy the test controls.
async fn main_behind_proxy() -> (TestEnv, PausableProxy) {
    TestEnv::new().await.behind_proxy("DATABASE_URL").await
}

#[tokio::test]
async fn a_postgresql_that_stops_answering_costs_a_page_its_deadline_not_forever() {
    let (env, proxy) = main_behind_proxy().await;
    let app = env
        .set("SESSION_CACHE_SECS", "0")
        .set("REQUEST_TIMEOUT_SECS", "4")
        .spawn()
        .await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    assert!(app
        .page(&browser, "/dashboard")
        .await
        .contains("href=\"/artist/"));
    // Pooled connections stay open and silent: no error ever comes back on its own.
    proxy.pause();
    for path in ["/dashboard", "/history", "/api/viewer"] {
        let started = Instant::now();
        let request = if path.starts_with("/api/") {
            browser.post(app.url(path))
        } else {
            browser.get(app.url(path))
        };
        let response = request.send().await.expect("an answer");
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(7),
            "{path} answered at its deadline, not never ({elapsed:?})"
        );
        assert_eq!(response.status(), 503, "{path}");
        let text = response.text().await.expect("body");
        assert!(
            text.contains("Try again in a minute"),
            "{path}: {text:.300}"
        );
        assert!(
            !text.contains("pool timed out"),
            "no driver words: {text:.300}"
        );
    }
    proxy.resume().await;
    app.shutdown().await;
}

/// Load `path` with main down until two loads have waited for the pool (more than 2.5 s;
/// at most 15 loads): each must say so in words and wait for the database once (under
/// 5.5 s). Returns those two waits.
async fn waits_for_main(app: &TestApp, browser: &reqwest::Client, path: &str) -> Vec<Duration> {
    let mut waited = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        let response = browser.get(app.url(path)).send().await.expect("an answer");
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 503, "{path}");
        let text = response.text().await.expect("body");
        assert!(
            text.contains("Try again in a minute"),
            "{path}: {text:.300}"
        );
        assert!(
            elapsed < Duration::from_millis(5500),
            "{path} waited for the database more than once ({elapsed:?})"
        );
        if elapsed > Duration::from_millis(2500) {
            waited.push(elapsed);
            if waited.len() == 2 {
                break;
            }
        }
    }
    waited
}

#[tokio::test]
async fn a_postgresql_that_is_down_costs_a_page_one_wait_not_two() {
    let (env, proxy) = main_behind_proxy().await;
    let app = env.spawn().await;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    // Kept in the session cache: the page's first wait on the database is its own query.
    assert!(app
        .page(&browser, "/history")
        .await
        .contains("How your top lists moved"));
    proxy.take_down().await;
    // The pool's idle connections each fail one query at once and are dropped; then a
    // query waits for a new connection, which PostgreSQL refuses until the pool's 3 s
    // acquire deadline. Once none is left, the page used to wait that long twice (6 s):
    // for its cache key's query, then for the history's.
    let waited = waits_for_main(&app, &browser, "/history").await;
    assert_eq!(
        waited.len(),
        2,
        "requests reached the pool's wait for a new connection: {waited:?}"
    );
    // /listening is not a cached page: its three server functions (the panels, trending,
    // the instance's totals) share one session lookup, its failure included — they took
    // 3 s each in turn (9 s) when a failed lookup was tried again by the next.
    let waited = waits_for_main(&app, &browser, "/listening").await;
    assert_eq!(waited.len(), 2, "{waited:?}");
    proxy.resume().await;
    assert!(app
        .page(&browser, "/history")
        .await
        .contains("How your top lists moved"));
    app.shutdown().await;
}

/// How long a page may take once a hung store is marked down: the page waits on no store
/// (the nodes' deadline is 5 s, MongoDB's 3 s), so this holds on a busy machine too.
const MARKED_DOWN_PAGE: Duration = Duration::from_secs(2);

/// Both analytics nodes stop answering (connections stay open, nothing comes back): one
/// read waits out its deadline and marks them down; after that the Listening, artist and
/// Distributed pages and `/readyz` answer at once, saying so, without asking the nodes;
/// once the nodes answer again, a probe finds them back and the panels return.
#[tokio::test]
async fn hung_analytics_nodes_cost_one_wait_then_pages_say_so_at_once_until_they_are_back() {
    let env = TestEnv::new().await.with_second_node().await;
    let (env, first) = env.behind_proxy("ANALYTICS_DATABASE_URL").await;
    let (env, second) = env.behind_proxy("ANALYTICS_2_DATABASE_URL").await;
    let env = env
        .set("ANALYTICS_FDW_PORT", first.port.to_string())
        .set("ANALYTICS_2_FDW_PORT", second.port.to_string());
    let app = env.spawn().await;
    let stores = &app.state.stores;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    personalify::server::plays::ingest::poll_user(&app.state, &user)
        .await
        .expect("poll");
    let dashboard = app.page(&browser, "/dashboard").await;
    let artist = format!(
        "/artist/{}",
        artist_links(&dashboard).first().expect("an artist")
    );
    let listening = app.page(&browser, "/listening").await;
    assert!(!listening.contains("listening-unavailable"));

    first.pause();
    second.pause();
    // The one wait: a read of their plays misses its deadline.
    let started = Instant::now();
    let missed = personalify::server::listening::load(
        stores,
        &user.spotify_id,
        personalify::domain::TimeRange::ShortTerm,
    )
    .await;
    assert!(missed.is_err());
    assert!(started.elapsed() >= Duration::from_secs(4), "it waited");
    // And /readyz, whose probe of the other node misses its deadline too.
    let (_, status, _) = timed(&app, &browser, "/readyz").await;
    assert_eq!(status, 503);
    common::wait_for(10, "both nodes are marked down", || async {
        stores
            .analytics
            .nodes()
            .iter()
            .all(|n| n.breaker.check().is_err())
    })
    .await;

    // Now every read of the nodes is answered at once, in words.
    let started = Instant::now();
    let said = personalify::server::listening::load(
        stores,
        &user.spotify_id,
        personalify::domain::TimeRange::ShortTerm,
    )
    .await
    .expect_err("unavailable")
    .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        said.contains("analytics node") && said.contains("is not answering"),
        "{said}"
    );
    for (path, says) in [
        ("/listening", "data-testid=\"listening-unavailable\""),
        (artist.as_str(), "data-testid=\"artist-plays-unavailable\""),
        ("/distributed", "so this query was not sent"),
    ] {
        let (elapsed, status, text) = timed(&app, &browser, path).await;
        assert!(elapsed < MARKED_DOWN_PAGE, "{path} took {elapsed:?}");
        assert_eq!(status, 200, "{path}");
        assert!(text.contains(says), "{path} says {says:?}");
    }
    let (elapsed, status, text) = timed(&app, &browser, "/readyz").await;
    assert!(elapsed < MARKED_DOWN_PAGE, "/readyz took {elapsed:?}");
    assert_eq!(status, 503);
    assert!(text.contains("\"analytics\",\"analytics-2\""), "{text}");

    first.resume().await;
    second.resume().await;
    common::wait_for(15, "a probe finds the nodes back", || async {
        stores
            .analytics
            .nodes()
            .iter()
            .all(|n| n.breaker.check().is_ok())
    })
    .await;
    let listening = app.page(&browser, "/listening").await;
    assert!(
        !listening.contains("listening-unavailable"),
        "the panels are back"
    );
    app.shutdown().await;
}

/// MongoDB stops answering: one history read waits out its 3 s, then the history page and
/// every read say so at once until MongoDB answers again.
#[tokio::test]
async fn a_hung_mongodb_costs_one_wait_then_the_history_says_so_at_once() {
    let env = TestEnv::new().await;
    let proxy = PausableProxy::start(url_addr(&env.vars["MONGODB_URL"])).await;
    let app = env
        .set(
            "MONGODB_URL",
            format!("mongodb://127.0.0.1:{}/?directConnection=true", proxy.port),
        )
        .spawn()
        .await;
    let mongo = &app.state.stores.mongo;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    assert!(app.page(&browser, "/history").await.contains("history"));

    proxy.pause();
    let read = || mongo.latest(&user.spotify_id, personalify::domain::TimeRange::ShortTerm);
    let started = Instant::now();
    assert!(read().await.is_err());
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    assert!(mongo.breaker.check().is_err(), "marked down");
    // A sync meanwhile: PostgreSQL has it, its history waits for MongoDB (so no page has
    // it cached).
    app.sync(&user).await;
    let started = Instant::now();
    let said = read().await.expect_err("down").to_string();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(said.contains("MongoDB) is not answering"), "{said}");
    let (elapsed, status, text) = timed(&app, &browser, "/history").await;
    assert!(elapsed < MARKED_DOWN_PAGE, "/history took {elapsed:?}");
    assert_eq!(status, 200);
    assert!(text.contains("history is unavailable right now"));
    let (elapsed, status, _) = timed(&app, &browser, "/readyz").await;
    assert!(elapsed < MARKED_DOWN_PAGE, "/readyz took {elapsed:?}");
    assert_eq!(status, 503);

    proxy.resume().await;
    common::wait_for(15, "a probe finds MongoDB back", || async {
        mongo.breaker.check().is_ok()
    })
    .await;
    assert!(read().await.is_ok());
    app.shutdown().await;
}

/// Redis stops answering: one command waits out its second and marks it down; then
/// trending (which lives in Redis) says so at once, and the pages that only cache there
/// go on; once Redis answers, a probe finds it back and trending returns.
#[tokio::test]
async fn a_hung_redis_costs_one_wait_then_trending_says_so_at_once() {
    let env = TestEnv::new().await;
    let proxy = PausableProxy::start(url_addr(&env.vars["REDIS_URL"])).await;
    let app = env
        .set("REDIS_URL", format!("redis://127.0.0.1:{}", proxy.port))
        .spawn()
        .await;
    let stores = &app.state.stores;
    let (browser, user) = app.signed_in(None).await;
    app.sync(&user).await;
    assert!(personalify::server::trending::load(stores).await.is_ok());

    proxy.pause();
    let started = Instant::now();
    assert!(personalify::server::trending::load(stores).await.is_err());
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    assert!(stores.cache.breaker.check().is_err(), "marked down");
    let started = Instant::now();
    let said = personalify::server::trending::load(stores)
        .await
        .expect_err("down")
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(said.contains("Redis"), "{said}");
    for path in ["/dashboard", "/listening"] {
        let (elapsed, status, _) = timed(&app, &browser, path).await;
        assert!(elapsed < MARKED_DOWN_PAGE, "{path} took {elapsed:?}");
        assert_eq!(status, 200, "{path}");
    }

    proxy.resume().await;
    common::wait_for(15, "a probe finds Redis back", || async {
        stores.cache.breaker.check().is_ok()
    })
    .await;
    assert!(personalify::server::trending::load(stores).await.is_ok());
    app.shutdown().await;
}
