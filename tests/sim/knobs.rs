//! Bearer tokens on `/v1` and the fault knobs: expiry, scopes, 429, 5xx, latency, counts.

use super::*;

#[tokio::test]
async fn web_api_refuses_missing_unknown_and_expired_tokens() {
    let s = default_sim().await;
    let res = s.http.get(s.url("/v1/me")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["status"], 401);
    assert_eq!(error_message(&body), "No token provided");

    let (status, body) = s.get_json("/v1/me", "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_message(&body), "Invalid access token");

    let tokens = s.login(None).await;
    s.sim.expire_access_tokens();
    let (status, body) = s.get_json("/v1/me", &tokens.access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_message(&body), "The access token expired");
    // A refresh gets a working token again.
    let (status, body) = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens.refresh),
            ("client_id", CLIENT_ID),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    let fresh = body["access_token"].as_str().expect("access");
    assert_eq!(s.get_json("/v1/me", fresh).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_token_without_the_scope_is_forbidden_from_top_items() {
    let s = default_sim().await;
    let verifier = new_verifier();
    let query = redirect_query(
        &s.authorize(&verifier, &[("scope", "user-read-email")])
            .await,
    );
    let (_, body) = s.exchange(&query["code"], &verifier).await;
    let access = body["access_token"].as_str().expect("access");
    let (status, body) = s.get_json("/v1/me/top/artists", access).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_message(&body), "Insufficient client scope");
}

#[tokio::test]
async fn rate_limit_knob_answers_429_with_retry_after_then_recovers() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    s.sim.rate_limit_next(7, 1);
    let res = s.get("/v1/me/top/artists", &tokens.access).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "7");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["status"], 429);
    assert_eq!(
        s.get("/v1/me/top/artists", &tokens.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn fail_next_answers_the_status_count_times_then_recovers() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    s.sim.fail_next(503, 2);
    for _ in 0..2 {
        let (status, body) = s.get_json("/v1/me", &tokens.access).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["status"], 503);
    }
    assert_eq!(
        s.get("/v1/me", &tokens.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn latency_knob_delays_responses() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let latency = Duration::from_millis(300);
    s.sim.set_latency(latency);
    let started = Instant::now();
    assert_eq!(
        s.get("/v1/me", &tokens.access).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
}

#[tokio::test]
async fn request_count_counts_by_path_prefix() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    s.get("/v1/me/top/artists", &tokens.access).await;
    s.get("/v1/me/top/tracks?limit=5", &tokens.access).await;
    s.get("/v1/me", &tokens.access).await;
    assert_eq!(s.sim.request_count("/v1/me/top"), 2);
    assert_eq!(s.sim.request_count("/v1/me/top/tracks"), 1);
    assert_eq!(s.sim.request_count("/v1"), 3);
    assert_eq!(s.sim.request_count("/api/token"), 1);
    assert_eq!(s.sim.request_count("/v1/artists"), 0);
}
