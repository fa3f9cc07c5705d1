//! `/auth/login`, `/auth/demo`, `/auth/callback`, `/auth/logout`.

use super::crypto::{sha256, Sealed};
use super::pages::problem;
use super::session::{self, read_cookie, SESSION_TTL};
use super::tokens;
use crate::server::sim::Simulator;
use crate::server::spotify::SpotifyError;
use crate::server::state::AppState;
use crate::server::sync::{SyncUser, Trigger};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::time::Duration;

const STATE_COOKIE: &str = "pfy_oauth";
/// Over https: a `__Secure-` cookie is kept only if Secure (its path is /auth, so not
/// `__Host-`).
const SECURE_STATE_COOKIE: &str = "__Secure-pfy_oauth";

fn state_cookie(secure: bool) -> &'static str {
    if secure {
        SECURE_STATE_COOKIE
    } else {
        STATE_COOKIE
    }
}
const STATE_PATH: &str = "/auth";
/// How long a started sign-in stays valid.
const STATE_TTL: Duration = Duration::from_secs(600);
/// Where a signed-in person lands.
const HOME: &str = "/dashboard";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/demo", get(demo))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
}

fn redirect(to: &str, cookies: &[HeaderValue]) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    for cookie in cookies {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable right now",
        "Personalify cannot reach its database. Try again in a minute.",
    )
}

async fn login(State(state): State<AppState>) -> Response {
    start_sign_in(&state, &[]).await
}

/// Demo mode's way in: the same flow against the in-process simulator, as a demo listener.
async fn demo(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    if !state.auth.demo {
        return problem(
            StatusCode::NOT_FOUND,
            "The demo is off on this server",
            "This server is connected to Spotify, so the demo listeners are not available. Log in with Spotify instead.",
        );
    }
    let params = parse_query(query.as_deref());
    let users = Simulator::listeners();
    let user = match params.get("user") {
        None => users[0].id,
        Some(wanted) => match users.iter().find(|u| u.id == wanted) {
            Some(u) => u.id,
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Unknown demo listener",
                    "Pick one of the demo listeners on the start page.",
                )
            }
        },
    };
    start_sign_in(&state, &[("demo_user", user)]).await
}

async fn start_sign_in(state: &AppState, extra: &[(&str, &str)]) -> Response {
    let auth = &state.auth;
    let request = auth.spotify.authorize(extra);
    // The verifier is sealed with the state as associated data: it opens only for it.
    let sealed = auth.cipher.seal(&request.pkce_verifier, &request.state);
    let pool = &state.stores.main;
    // Expired sign-ins are swept here, where they are created.
    let _ = sqlx::query("DELETE FROM oauth_states WHERE expires_at < now()")
        .execute(pool)
        .await;
    let saved = sqlx::query(
        "INSERT INTO oauth_states (state_hash, key_id, verifier, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(sha256(&request.state))
    .bind(&sealed.key_id)
    .bind(&sealed.bytes)
    .bind(STATE_TTL.as_secs_f64())
    .execute(pool)
    .await;
    if let Err(err) = saved {
        tracing::error!(error = %err, "cannot save the sign-in state");
        return unavailable();
    }
    let cookie = session::set_cookie(
        state_cookie(auth.secure_cookies),
        &request.state,
        STATE_PATH,
        STATE_TTL,
        auth.secure_cookies,
    );
    redirect(request.url.as_str(), &[cookie])
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let auth = &state.auth;
    let clear_state = session::clear_cookie(
        state_cookie(auth.secure_cookies),
        STATE_PATH,
        auth.secure_cookies,
    );
    let params = parse_query(query.as_deref());
    let fail = |status: StatusCode, title: &'static str, message: &'static str| {
        with_cookie(problem(status, title, message), clear_state.clone())
    };
    let start_again = "Go back to the start page and sign in again.";

    // 1. The state: present, started in this browser, known, unused, fresh.
    let Some(returned_state) = params.get("state").filter(|s| !s.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in link is incomplete",
            start_again,
        );
    };
    if read_cookie(&headers, state_cookie(auth.secure_cookies)).as_deref()
        != Some(returned_state.as_str())
    {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in did not start here",
            "The link does not belong to a sign-in started in this browser (or it expired). Go back to the start page and sign in again.",
        );
    }
    let consumed: Result<Option<(String, Vec<u8>)>, sqlx::Error> = sqlx::query_as(
        "DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > now() RETURNING key_id, verifier",
    )
    .bind(sha256(returned_state))
    .fetch_optional(&state.stores.main)
    .await;
    let (key_id, verifier) = match consumed {
        Ok(Some(row)) => row,
        Ok(None) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "This sign-in has expired or was already used",
                start_again,
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot read the sign-in state");
            return with_cookie(unavailable(), clear_state);
        }
    };

    // 2. Spotify's own answer.
    if let Some(error) = params.get("error") {
        return match error.as_str() {
            "access_denied" => fail(
                StatusCode::FORBIDDEN,
                "You did not give access",
                "Personalify needs to read your top artists and recently played tracks to show them. Nothing was saved. You can try again whenever you like.",
            ),
            _ => fail(
                StatusCode::BAD_GATEWAY,
                "Spotify could not complete the sign-in",
                "Spotify returned an error. Try again in a moment.",
            ),
        };
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in link is incomplete",
            start_again,
        );
    };
    let Ok(verifier) = auth.cipher.open(
        &Sealed {
            key_id,
            bytes: verifier,
        },
        returned_state,
    ) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            start_again,
        );
    };

    // 3. Tokens, then who this is.
    let tokens = match auth.spotify.exchange_code(code, &verifier).await {
        Ok(tokens) => tokens,
        Err(err) => return with_cookie(spotify_problem(&err), clear_state),
    };
    let me = match auth.spotify.me(&tokens.access_token).await {
        Ok(me) => me,
        Err(err) => return with_cookie(spotify_problem(&err), clear_state),
    };

    // 4. The user, their tokens and a new session, together; not while an account of
    //    theirs is still being deleted (it would take the new one with it). A deletion
    //    that is done leaves a row refusing their writes for a while: signing in again
    //    ends it.
    let pool = &state.stores.main;
    let deleting: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM listener_deletions
                         WHERE listener_key = md5($1) AND status = 'deleting')",
    )
    .bind(&me.id)
    .fetch_one(pool)
    .await;
    if matches!(deleting, Ok(true)) {
        return with_cookie(
            problem(
                StatusCode::CONFLICT,
                "Your account is being deleted",
                "Personalify is still removing what it held about you. Sign in again in a few minutes, once that has finished.",
            ),
            clear_state,
        );
    }
    let saved: Result<(String, i64), tokens::TokenError> = async {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM listener_deletions WHERE listener_key = md5($1) AND status = 'done'")
            .bind(&me.id)
            .execute(&mut *tx)
            .await?;
        let user_id: i64 = sqlx::query_scalar(
            "INSERT INTO users (spotify_id, display_name) VALUES ($1, $2)
             ON CONFLICT (spotify_id) DO UPDATE SET display_name = EXCLUDED.display_name, updated_at = now()
             RETURNING id",
        )
        .bind(&me.id)
        .bind(&me.display_name)
        .fetch_one(&mut *tx)
        .await?;
        tokens::store(&mut tx, &auth.cipher, user_id, &tokens, None).await?;
        tx.commit().await?;
        // A new session id at every sign-in; the one the browser had (if any) ends.
        session::end(pool, &state.sessions, &headers).await?;
        Ok((session::create(pool, user_id).await?, user_id))
    }
    .await;
    match saved {
        Ok((token, user_id)) => {
            tracing::info!(spotify_id = %me.id, "signed in");
            if state.config.sync_on_login {
                let user = SyncUser {
                    user_id,
                    spotify_id: me.id.clone(),
                };
                if let Err(e) = state.syncs.start(&state, user, Trigger::Login).await {
                    tracing::warn!(error = %e, "sync after sign-in not started");
                }
            }
            let session_cookie = session::set_cookie(
                session::session_cookie(auth.secure_cookies),
                &token,
                "/",
                SESSION_TTL,
                auth.secure_cookies,
            );
            redirect(HOME, &[session_cookie, clear_state])
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot save the sign-in");
            with_cookie(unavailable(), clear_state)
        }
    }
}

/// A Spotify failure during sign-in, as a page a person can act on.
fn spotify_problem(err: &SpotifyError) -> Response {
    tracing::warn!(error = %err, "sign-in failed at Spotify");
    match err {
        SpotifyError::InvalidGrant(_) => problem(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already used",
            "Go back to the start page and sign in again.",
        ),
        SpotifyError::Forbidden(_) => problem(
            StatusCode::FORBIDDEN,
            "Spotify did not let this account in",
            "Apps in Spotify's Development Mode only admit the up to 5 users their owner added in the Spotify developer dashboard. Ask the owner of this server to add you.",
        ),
        SpotifyError::RateLimited { retry_after } => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Spotify is busy",
            &format!("Spotify asked us to slow down. Try again in {} seconds.", retry_after.as_secs().max(1)),
        ),
        _ => problem(
            StatusCode::BAD_GATEWAY,
            "Spotify is not answering",
            "Personalify could not reach Spotify to finish signing you in. Try again in a minute.",
        ),
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(err) = session::end(&state.stores.main, &state.sessions, &headers).await {
        tracing::error!(error = %err, "cannot end the session");
    }
    redirect(
        "/",
        &[session::clear_cookie(
            session::session_cookie(state.auth.secure_cookies),
            "/",
            state.auth.secure_cookies,
        )],
    )
}
