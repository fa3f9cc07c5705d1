//! `/authorize` and `/api/token`: PKCE, single-use codes, clients, consent, refresh.

use super::*;

#[tokio::test]
async fn pkce_round_trip_signs_in_as_the_chosen_demo_user() {
    let s = default_sim().await;
    let verifier = new_verifier();
    let code = s.code_for(&verifier, Some("demo-sari")).await;
    assert!(code.len() >= 43);
    let (status, body) = s.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], SCOPE);
    let access = body["access_token"].as_str().expect("access token");
    assert!(access.len() >= 43);
    assert_ne!(body["refresh_token"], body["access_token"]);

    let (status, me) = s.get_json("/v1/me", access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], "demo-sari");
    assert_eq!(me["display_name"], "Sari Wulandari");
    assert_eq!(me["type"], "user");
    assert_eq!(me["uri"], "spotify:user:demo-sari");
    assert_eq!(me["product"], "premium");
    assert_eq!(me["country"], "ID");
    assert!(me["email"].as_str().is_some_and(|e| e.contains('@')));
    assert!(me["followers"]["href"].is_null());
    assert!(me["images"][0]["url"]
        .as_str()
        .is_some_and(|u| u.starts_with(&s.base)));
}

#[tokio::test]
async fn without_demo_user_the_first_demo_user_signs_in() {
    let s = default_sim().await;
    let tokens = s.login(None).await;
    let (_, me) = s.get_json("/v1/me", &tokens.access).await;
    let first = &Simulator::demo_users()[0];
    assert_eq!(me["id"], first.id);
    assert_eq!(me["display_name"], first.display_name);
    assert!(Simulator::demo_users().len() >= 3);
}

#[tokio::test]
async fn a_wrong_verifier_is_refused() {
    let s = default_sim().await;
    let code = s.code_for(&new_verifier(), None).await;
    let (status, body) = s.exchange(&code, &new_verifier()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "code_verifier was incorrect");
}

#[tokio::test]
async fn a_code_works_once() {
    let s = default_sim().await;
    let verifier = new_verifier();
    let code = s.code_for(&verifier, None).await;
    assert_eq!(s.exchange(&code, &verifier).await.0, StatusCode::OK);
    let (status, body) = s.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid authorization code");
    let (status, _) = s.exchange("made-up-code", &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_different_redirect_uri_at_token_time_is_refused() {
    let s = default_sim().await;
    let verifier = new_verifier();
    let code = s.code_for(&verifier, None).await;
    let (status, body) = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:3000/elsewhere"),
            ("client_id", CLIENT_ID),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid redirect URI");
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_gets_an_error_page_at_authorize() {
    let s = default_sim().await;
    let res = s
        .authorize(&new_verifier(), &[("client_id", "someone-else")])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("INVALID_CLIENT: Invalid client"));

    let res = s
        .authorize(
            &new_verifier(),
            &[("redirect_uri", "http://localhost:3000/auth/callback")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("INVALID_CLIENT: Invalid redirect URI"));
}

#[tokio::test]
async fn an_unknown_client_at_token_is_invalid_client() {
    let s = default_sim().await;
    let verifier = new_verifier();
    let code = s.code_for(&verifier, None).await;
    let (status, body) = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", "someone-else"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_description"], "Invalid client");
    // The refused client did not burn the code.
    assert_eq!(s.exchange(&code, &verifier).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_confidential_client_may_authenticate_with_basic_auth() {
    let s = start(|c| c.client_secret = Some("s3cret".into())).await;
    let verifier = new_verifier();
    let form = |code: String| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", REDIRECT_URI.to_string()),
            ("code_verifier", verifier.clone()),
        ]
    };
    let code = s.code_for(&verifier, None).await;
    let wrong = s
        .http
        .post(s.url("/api/token"))
        .basic_auth(CLIENT_ID, Some("nope"))
        .form(&form(code.clone()))
        .send()
        .await
        .expect("token");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");

    let right = s
        .http
        .post(s.url("/api/token"))
        .basic_auth(CLIENT_ID, Some("s3cret"))
        .form(&form(code))
        .send()
        .await
        .expect("token");
    assert_eq!(right.status(), StatusCode::OK);
    assert_eq!(right.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn authorize_errors_after_the_redirect_check_go_back_to_the_client() {
    let s = default_sim().await;
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("state", "")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("demo_user", "demo-nobody")], "invalid_request"),
        (
            &[("scope", "user-top-read all-the-things")],
            "invalid_scope",
        ),
    ];
    for (overrides, error) in cases {
        let query = redirect_query(&s.authorize(&new_verifier(), overrides).await);
        assert_eq!(
            query.get("error").map(String::as_str),
            Some(error),
            "{overrides:?}"
        );
        assert!(!query.contains_key("code"));
        let expected_state = if overrides[0].0 == "state" {
            None
        } else {
            Some("st4te")
        };
        assert_eq!(query.get("state").map(String::as_str), expected_state);
    }
}

#[tokio::test]
async fn denied_consent_redirects_with_access_denied_once() {
    let s = default_sim().await;
    s.sim.deny_next_consent();
    let query = redirect_query(&s.authorize(&new_verifier(), &[]).await);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(query.get("state").map(String::as_str), Some("st4te"));
    assert!(!query.contains_key("code"));
    // The next login is consented again.
    s.login(None).await;
}

#[tokio::test]
async fn refresh_rotates_and_revocation_stops_it() {
    let s = default_sim().await;
    let first = s.login(Some("demo-kenji")).await;
    let sim_ref = &s;
    let refresh = |token: String| async move {
        sim_ref
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", CLIENT_ID),
            ])
            .await
    };
    let (status, body) = refresh(first.refresh.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["refresh_token"].as_str().expect("rotated").to_string();
    assert_ne!(second, first.refresh);
    assert_eq!(body["scope"], SCOPE);
    let (_, me) = s
        .get_json("/v1/me", body["access_token"].as_str().expect("access"))
        .await;
    assert_eq!(me["id"], "demo-kenji");
    // The old refresh token keeps working, as Spotify's do.
    assert_eq!(refresh(first.refresh.clone()).await.0, StatusCode::OK);

    s.sim.revoke_refresh_tokens("demo-kenji");
    for token in [first.refresh.clone(), second] {
        let (status, body) = refresh(token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "Refresh token revoked");
    }
    let again = s.login(Some("demo-kenji")).await;
    assert_eq!(refresh(again.refresh).await.0, StatusCode::OK);

    let (status, body) = refresh("never-issued".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "Invalid refresh token");
}

#[tokio::test]
async fn unknown_grant_types_are_unsupported() {
    let s = default_sim().await;
    let (status, body) = s
        .token(&[("grant_type", "password"), ("client_id", CLIENT_ID)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
}
