//! The Web API client against a standalone simulator on its own port (real HTTP):
//! PKCE, retries, Retry-After, timeouts, paging.

use personalify::domain::TimeRange;
use personalify::server::sim::{self, SimConfig, Simulator};
use personalify::server::spotify::{Endpoints, SpotifyClient, SpotifyError};
use secrecy::SecretString;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "testclient";
const SECRET: &str = "test-secret";
const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";

struct Harness {
    sim: Simulator,
    endpoints: Endpoints,
}

async fn standalone_sim() -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = SimConfig::new(CLIENT_ID, vec![REDIRECT.to_string()], base.clone());
    config.client_secret = Some(SECRET.into());
    config.pinned_day = Some(20_000);
    let sim = Simulator::new(config);
    tokio::spawn(sim::serve(sim.clone(), listener, std::future::pending()));
    let url = url::Url::parse(&base).unwrap();
    Harness {
        sim,
        endpoints: Endpoints {
            accounts_public: url.clone(),
            accounts_internal: url.clone(),
            api: url,
        },
    }
}

fn client(h: &Harness, timeout: Duration) -> SpotifyClient {
    SpotifyClient::new(
        &h.endpoints,
        CLIENT_ID,
        &SecretString::from(SECRET),
        &url::Url::parse(REDIRECT).unwrap(),
        timeout,
        Duration::from_secs(5),
    )
}

/// Consent as the first demo user; returns (code, verifier).
async fn authorize(client: &SpotifyClient) -> (String, String) {
    let request = client.authorize(&[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(request.url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    };
    assert_eq!(param("state").as_deref(), Some(request.state.as_str()));
    (param("code").expect("a code"), request.pkce_verifier)
}

async fn signed_in(h: &Harness) -> (SpotifyClient, SecretString) {
    let client = client(h, Duration::from_secs(5));
    let (code, verifier) = authorize(&client).await;
    let tokens = client
        .exchange_code(&code, &verifier)
        .await
        .expect("tokens");
    (client, tokens.access_token)
}

#[tokio::test]
async fn pkce_round_trip_gives_tokens_for_the_demo_user() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;
    let me = client.me(&token).await.unwrap();
    assert_eq!(me.id, Simulator::demo_users()[0].id);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let h = standalone_sim().await;
    let client = client(&h, Duration::from_secs(5));
    let (code, _) = authorize(&client).await;
    let err = client
        .exchange_code(&code, "not-the-verifier-not-the-verifier-0123456789")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SpotifyError::InvalidGrant(m) if m.contains("code_verifier")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_code_works_once() {
    let h = standalone_sim().await;
    let client = client(&h, Duration::from_secs(5));
    let (code, verifier) = authorize(&client).await;
    client
        .exchange_code(&code, &verifier)
        .await
        .expect("first use");
    let err = client.exchange_code(&code, &verifier).await.unwrap_err();
    assert!(matches!(err, SpotifyError::InvalidGrant(_)), "{err:?}");
}

#[tokio::test]
async fn rate_limits_are_waited_out_when_short() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;
    h.sim.rate_limit_next(1, 1);
    let started = Instant::now();
    client.me(&token).await.expect("succeeds after waiting");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn a_long_retry_after_becomes_a_clear_rate_limited_error() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;
    h.sim.rate_limit_next(120, 1);
    let started = Instant::now();
    let err = client.me(&token).await.unwrap_err();
    assert_eq!(
        err,
        SpotifyError::RateLimited {
            retry_after: Duration::from_secs(120)
        }
    );
    assert_eq!(
        err.to_string(),
        "Spotify is rate limiting us; try again after 120 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait 120 s"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_surfaced() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;

    h.sim.fail_next(503, 2);
    client.me(&token).await.expect("third try succeeds");

    h.sim.fail_next(502, 10);
    let before = h.sim.request_count("/v1/me");
    let err = client.me(&token).await.unwrap_err();
    assert_eq!(
        err,
        SpotifyError::Upstream {
            status: 502,
            attempts: 3
        }
    );
    assert_eq!(
        h.sim.request_count("/v1/me") - before,
        3,
        "bounded: three tries"
    );
}

#[tokio::test]
async fn slow_answers_time_out_after_bounded_tries() {
    let h = standalone_sim().await;
    let (_, token) = signed_in(&h).await;
    let impatient = client(&h, Duration::from_millis(300)).with_max_attempts(2);
    h.sim.set_latency(Duration::from_millis(1500));
    let started = Instant::now();
    let err = impatient.me(&token).await.unwrap_err();
    assert_eq!(err, SpotifyError::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn top_lists_page_through_to_what_spotify_has() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;
    let artists = client
        .top_artists(&token, TimeRange::ShortTerm, 99)
        .await
        .unwrap();
    assert!(
        artists.len() > 50 && artists.len() <= 99,
        "{}",
        artists.len()
    );
    let mut ids: Vec<&str> = artists.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), artists.len(), "no duplicates across pages");
    let tracks = client
        .top_tracks(&token, TimeRange::LongTerm, 20)
        .await
        .unwrap();
    assert_eq!(tracks.len(), 20);
    assert!(tracks.iter().all(|t| !t.artists.is_empty()));
}

#[tokio::test]
async fn the_2026_stripped_shape_parses_as_unknowns() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;
    h.sim.set_stripped(true);
    let artists = client
        .top_artists(&token, TimeRange::MediumTerm, 10)
        .await
        .unwrap();
    assert!(artists
        .iter()
        .all(|a| a.genres.is_none() && a.popularity.is_none() && a.followers.is_none()));
    let me = client.me(&token).await.unwrap();
    assert_eq!((me.email, me.country), (None, None));
}

#[tokio::test]
async fn an_expired_token_is_reported_as_unauthorized_for_the_caller_to_refresh() {
    let h = standalone_sim().await;
    let (client, token) = signed_in(&h).await;
    h.sim.expire_access_tokens();
    let err = client.me(&token).await.unwrap_err();
    assert!(
        matches!(&err, SpotifyError::Unauthorized(m) if m.contains("expired")),
        "{err:?}"
    );
}
