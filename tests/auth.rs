//! Sign-in end to end against the in-process simulator over real HTTP, with the real
//! stores: state and PKCE checks, sessions, tokens at rest, refresh and re-login.

mod common;

use common::{location, TestApp, TestEnv};
use personalify::server::auth::crypto::Sealed;
use personalify::server::auth::tokens::{self, TokenError};
use personalify::server::sim::Simulator;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test binary, at debug level, to search for leaked secrets.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init()
            .expect("the only subscriber in this test binary");
        logs
    })
}

async fn demo_app() -> TestApp {
    logs();
    TestEnv::new().await.spawn().await
}

fn first_demo_user() -> &'static personalify::server::sim::DemoUser {
    &Simulator::demo_users()[0]
}

async fn user_id(app: &TestApp, spotify_id: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE spotify_id = $1")
        .bind(spotify_id)
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap()
}

/// The plaintext tokens of a user, decrypted the way the server does it.
async fn stored_tokens(app: &TestApp, user_id: i64) -> (String, String, Vec<u8>, Vec<u8>) {
    let (key_id, access, refresh): (String, Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT key_id, access_token, refresh_token FROM spotify_tokens WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&app.state.stores.main)
    .await
    .unwrap();
    let owner = format!("user:{user_id}");
    let cipher = &app.state.auth.cipher;
    let a = cipher
        .open(
            &Sealed {
                key_id: key_id.clone(),
                bytes: access.clone(),
            },
            &owner,
        )
        .unwrap();
    let r = cipher
        .open(
            &Sealed {
                key_id,
                bytes: refresh.clone(),
            },
            &owner,
        )
        .unwrap();
    (a, r, access, refresh)
}

async fn viewer(app: &TestApp, browser: &reqwest::Client) -> serde_json::Value {
    let res = browser.post(app.url("/api/viewer")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn demo_sign_in_round_trip_then_sign_out() {
    let app = demo_app().await;
    let browser = app.browser();
    let sign_in = app.demo_sign_in(&browser, None).await;
    assert_eq!(sign_in.response.status(), 303);
    assert_eq!(location(&sign_in.response), "/dashboard");
    let cookies: Vec<String> = sign_in
        .response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("pfy_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/")
    );
    assert!(
        !session.contains("Secure"),
        "plain http on loopback: no Secure flag"
    );

    let me = viewer(&app, &browser).await;
    assert_eq!(me["display_name"], first_demo_user().display_name);
    assert_eq!(me["spotify_id"], first_demo_user().id);
    assert_eq!(me["needs_relogin"], false);
    assert_eq!(me["demo_mode"], true);
    let page = app.page(&browser, "/dashboard").await;
    assert!(
        page.contains(first_demo_user().display_name),
        "dashboard names the user"
    );

    let session_value = session.split(';').next().unwrap().to_string();
    let out = browser.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/");
    assert_eq!(viewer(&app, &browser).await, serde_json::Value::Null);
    let page = app.page(&browser, "/dashboard").await;
    assert!(page.contains("You're not signed in") || page.contains("You&#x27;re not signed in"));

    // The old cookie is dead on the server too, not only forgotten by the browser.
    let replay = app
        .http
        .post(app.url("/api/viewer"))
        .header("cookie", session_value)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.json::<serde_json::Value>().await.unwrap(),
        serde_json::Value::Null
    );
    app.shutdown().await;
}

#[tokio::test]
async fn tokens_live_only_encrypted_and_never_reach_html_urls_cookies_or_logs() {
    let app = demo_app().await;
    let browser = app.browser();
    let sign_in = app.demo_sign_in(&browser, None).await;
    let set_cookies: String = sign_in
        .response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let dashboard = app.page(&browser, "/dashboard").await;
    let landing = app.page(&browser, "/").await;
    let viewer_json = viewer(&app, &browser).await.to_string();

    let id = user_id(&app, first_demo_user().id).await;
    let (access, refresh, access_bytes, refresh_bytes) = stored_tokens(&app, id).await;
    assert!(access.len() >= 20 && refresh.len() >= 20);
    for (secret, bytes) in [(&access, &access_bytes), (&refresh, &refresh_bytes)] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "plaintext in the database"
        );
    }

    let log_text = String::from_utf8_lossy(&logs().0.lock().unwrap()).to_string();
    assert!(log_text.contains("signed in"), "logs were captured");
    for secret in [&access, &refresh] {
        for (place, text) in [
            ("authorize URL", &sign_in.authorize),
            ("callback URL", &sign_in.callback),
            ("cookies", &set_cookies),
            ("dashboard HTML", &dashboard),
            ("landing HTML", &landing),
            ("viewer JSON", &viewer_json),
            ("logs", &log_text),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "a token appears in the {place}"
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn callback_without_state_is_refused() {
    let app = demo_app().await;
    let res = app.get("/auth/callback?code=abc").await;
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("This sign-in link is incomplete"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_forged_state_is_refused() {
    let app = demo_app().await;
    let browser = app.browser();
    // A real sign-in started in this browser...
    let start = browser.get(app.url("/auth/demo")).send().await.unwrap();
    assert_eq!(start.status(), 303);
    // ...but the callback carries someone else's state.
    let res = browser
        .get(app.url("/auth/callback?code=abc&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("did not start here"));

    // Cookie and parameter agree but the server never issued that state.
    let res = app
        .http
        .get(app.url("/auth/callback?code=abc&state=made-up"))
        .header("cookie", "pfy_oauth=made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("expired or was already used"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.state.stores.main)
        .await
        .unwrap();
    assert_eq!(users, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_state_works_once() {
    let app = demo_app().await;
    let browser = app.browser();
    let sign_in = app.demo_sign_in(&browser, None).await;
    assert_eq!(sign_in.response.status(), 303);
    let state = url::Url::parse(&sign_in.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let replay = app
        .http
        .get(&sign_in.callback)
        .header("cookie", format!("pfy_oauth={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay
        .text()
        .await
        .unwrap()
        .contains("expired or was already used"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_by_spotify() {
    let app = demo_app().await;
    let first = app.browser();
    let sign_in = app.demo_sign_in(&first, None).await;
    assert_eq!(sign_in.response.status(), 303);
    let code = url::Url::parse(&sign_in.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap();

    // A second, genuine sign-in start, whose callback is fed the already used code.
    let second = app.browser();
    let start = second.get(app.url("/auth/demo")).send().await.unwrap();
    let authorize = url::Url::parse(&location(&start)).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let res = second
        .get(app.url(&format!("/auth/callback?code={code}&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("expired or was already used"));
    assert_eq!(viewer(&app, &second).await, serde_json::Value::Null);
    app.shutdown().await;
}

#[tokio::test]
async fn access_denied_lands_on_a_friendly_page() {
    let app = demo_app().await;
    app.sim().deny_next_consent();
    let browser = app.browser();
    let sign_in = app.demo_sign_in(&browser, None).await;
    assert!(sign_in.callback.contains("error=access_denied"));
    assert_eq!(sign_in.response.status(), 403);
    let page = sign_in.response.text().await.unwrap();
    assert!(page.contains("You did not give access"));
    assert!(page.contains("Back to the start page"));
    assert_eq!(viewer(&app, &browser).await, serde_json::Value::Null);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_demo_listener_is_a_400_page() {
    let app = demo_app().await;
    let res = app.get("/auth/demo?user=nobody").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Unknown demo listener"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_transparently() {
    let app = demo_app().await;
    let browser = app.browser();
    app.demo_sign_in(&browser, None).await;
    let id = user_id(&app, first_demo_user().id).await;
    let (before, refresh_before, _, _) = stored_tokens(&app, id).await;
    let refreshes = app.sim().request_count("/api/token");

    // Spotify expires the token early; our clock still thinks it is fine.
    app.sim().expire_access_tokens();
    let s = &app.state;
    let me = tokens::with_token(&s.stores.main, &s.auth.cipher, &s.auth.spotify, id, |t| {
        let spotify = s.auth.spotify.clone();
        async move { spotify.me(&t).await }
    })
    .await
    .expect("refreshed and retried");
    assert_eq!(me.id, first_demo_user().id);
    assert_eq!(app.sim().request_count("/api/token"), refreshes + 1);
    let (after, refresh_after, _, _) = stored_tokens(&app, id).await;
    assert_ne!(before, after, "a new access token is stored");
    assert!(!refresh_after.is_empty() && !refresh_before.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_refresh_once() {
    let app = demo_app().await;
    app.demo_sign_in(&app.browser(), None).await;
    let id = user_id(&app, first_demo_user().id).await;
    sqlx::query(
        "UPDATE spotify_tokens SET expires_at = now() - interval '1 hour' WHERE user_id = $1",
    )
    .bind(id)
    .execute(&app.state.stores.main)
    .await
    .unwrap();
    let refreshes = app.sim().request_count("/api/token");
    let s = app.state.clone();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                tokens::access_token(&s.stores.main, &s.auth.cipher, &s.auth.spotify, id, None)
                    .await
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        let token = task.await.unwrap().expect("a token");
        got.push(secrecy::ExposeSecret::expose_secret(&token).to_string());
    }
    got.dedup();
    assert_eq!(got.len(), 1, "everyone got the same fresh token");
    assert_eq!(
        app.sim().request_count("/api/token"),
        refreshes + 1,
        "exactly one refresh"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_that_user_to_sign_in_again_and_nobody_else() {
    let app = demo_app().await;
    let users = Simulator::demo_users();
    let (alice, bob) = (&users[0], &users[1]);
    let alice_browser = app.browser();
    let bob_browser = app.browser();
    app.demo_sign_in(&alice_browser, Some(alice.id)).await;
    app.demo_sign_in(&bob_browser, Some(bob.id)).await;
    let (alice_id, bob_id) = (user_id(&app, alice.id).await, user_id(&app, bob.id).await);

    app.sim().revoke_refresh_tokens(alice.id);
    sqlx::query("UPDATE spotify_tokens SET expires_at = now() - interval '1 hour'")
        .execute(&app.state.stores.main)
        .await
        .unwrap();
    let s = &app.state;
    let alice_result = tokens::access_token(
        &s.stores.main,
        &s.auth.cipher,
        &s.auth.spotify,
        alice_id,
        None,
    )
    .await;
    assert!(
        matches!(alice_result, Err(TokenError::NeedsRelogin)),
        "{alice_result:?}"
    );
    let bob_result = tokens::access_token(
        &s.stores.main,
        &s.auth.cipher,
        &s.auth.spotify,
        bob_id,
        None,
    )
    .await;
    assert!(bob_result.is_ok(), "{bob_result:?}");

    assert_eq!(viewer(&app, &alice_browser).await["needs_relogin"], true);
    assert_eq!(viewer(&app, &bob_browser).await["needs_relogin"], false);
    let page = app.page(&alice_browser, "/dashboard").await;
    assert!(page.contains("Spotify needs you to sign in again"));

    // Signing in again clears the flag.
    app.demo_sign_in(&alice_browser, Some(alice.id)).await;
    assert_eq!(viewer(&app, &alice_browser).await["needs_relogin"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn a_signed_in_user_cannot_read_another_users_data_by_naming_them() {
    let app = demo_app().await;
    let users = Simulator::demo_users();
    let browser = app.browser();
    app.demo_sign_in(&browser, Some(users[0].id)).await;
    app.demo_sign_in(&app.browser(), Some(users[1].id)).await;

    // Whatever id the request names, the answer is about the session's user.
    for attempt in [
        browser.post(app.url(&format!("/api/viewer?spotify_id={}", users[1].id))),
        browser
            .post(app.url("/api/viewer"))
            .form(&[("spotify_id", users[1].id), ("user_id", "2")]),
    ] {
        let json: serde_json::Value = attempt.send().await.unwrap().json().await.unwrap();
        assert_eq!(json["spotify_id"], users[0].id);
    }
    let page = app
        .page(&browser, &format!("/dashboard?user={}", users[1].id))
        .await;
    assert!(page.contains(users[0].display_name) && !page.contains(users[1].display_name));
    app.shutdown().await;
}
