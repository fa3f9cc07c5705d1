//! The Spotify simulator over real HTTP: the OAuth flow with PKCE, the Web API shapes and
//! paging, the fault knobs, time travel and determinism. Each test starts its own simulator
//! on a random port (axum::serve on a TcpListener) and talks to it with reqwest.
#![cfg(feature = "ssr")]

mod accounts;
mod knobs;
mod mounting;
mod web_api;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use personalify::server::sim::{serve, SimConfig, Simulator};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const CLIENT_ID: &str = "personalify-test";
const REDIRECT_URI: &str = "http://127.0.0.1:3000/auth/callback";
const SCOPE: &str = "user-top-read user-read-recently-played";
/// 2026-02-16; "now" is 20:00 UTC that day.
const DAY: i64 = 20_500;
const NOW_MS: i64 = DAY * 86_400_000 + 20 * 3_600_000;

struct TestSim {
    sim: Simulator,
    /// Where the simulator's routes are, e.g. `http://127.0.0.1:41234`.
    base: String,
    http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

struct Tokens {
    access: String,
    refresh: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// A simulator pinned to [`DAY`], on a random port, tweaked by `configure`.
async fn start(configure: impl FnOnce(&mut SimConfig)) -> TestSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut config = SimConfig::new(CLIENT_ID, vec![REDIRECT_URI.to_string()], base.clone());
    config.pinned_day = Some(DAY);
    configure(&mut config);
    let sim = Simulator::new(config);
    let router = sim.router();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    TestSim {
        sim,
        base,
        http: client(),
        _shutdown: tx,
    }
}

async fn default_sim() -> TestSim {
    start(|_| {}).await
}

fn new_verifier() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The query of a redirect's `Location`, as a map.
fn redirect_query(res: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().expect("ascii location");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let url = url::Url::parse(location).expect("absolute location");
    url.query_pairs().into_owned().collect()
}

impl TestSim {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `/authorize` with good defaults; `overrides` replace or (with "") remove them.
    async fn authorize(&self, verifier: &str, overrides: &[(&str, &str)]) -> reqwest::Response {
        let challenge = challenge(verifier);
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st4te"),
            ("scope", SCOPE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in overrides {
            params.retain(|(k, _)| k != key);
            if !value.is_empty() {
                params.push((*key, *value));
            }
        }
        let url = url::Url::parse_with_params(&self.url("/authorize"), &params).expect("url");
        self.http.get(url).send().await.expect("authorize")
    }

    async fn code_for(&self, verifier: &str, demo_user: Option<&str>) -> String {
        let overrides: Vec<(&str, &str)> =
            demo_user.map(|u| ("demo_user", u)).into_iter().collect();
        let query = redirect_query(&self.authorize(verifier, &overrides).await);
        assert_eq!(query.get("state").map(String::as_str), Some("st4te"));
        query.get("code").cloned().expect("a code")
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.url("/api/token"))
            .form(form)
            .send()
            .await
            .expect("token");
        (res.status(), res.json().await.expect("json"))
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier),
        ])
        .await
    }

    async fn login(&self, demo_user: Option<&str>) -> Tokens {
        let verifier = new_verifier();
        let code = self.code_for(&verifier, demo_user).await;
        let (status, body) = self.exchange(&code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Tokens {
            access: body["access_token"].as_str().expect("access").to_string(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
        }
    }

    async fn get(&self, path_or_url: &str, token: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        self.http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    async fn get_json(&self, path_or_url: &str, token: &str) -> (StatusCode, Value) {
        let res = self.get(path_or_url, token).await;
        (res.status(), res.json().await.expect("json"))
    }

    async fn ids(&self, path: &str, token: &str) -> Vec<String> {
        let (status, body) = self.get_json(path, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        item_ids(&body)
    }
}

fn item_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("<none>")
}
