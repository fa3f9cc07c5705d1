//! Request guards shared by every route.
//!
//! - [`api_body_limit`]: server functions (`/api/…`) take a few small arguments; a body
//!   larger than [`API_BODY_LIMIT`] is refused with 413 before any of it is parsed, so a
//!   large upload can neither fill memory nor reach a parser.
//! - [`guard`]: one security layer for every response. State-changing requests (anything
//!   but GET, HEAD, OPTIONS) from another site are refused with 403 (`Sec-Fetch-Site`, else
//!   `Origin`, checked against this server); every response gets `nosniff`, a
//!   `Referrer-Policy`, `frame-ancestors 'none'` and, over https, HSTS; HTML gets a
//!   Content-Security-Policy whose only inline scripts are the ones the renderer emitted,
//!   by SHA-256 hash (hashes rather than nonces: kept pages, `server::page_cache`, are
//!   served many times); HTML and JSON answers without a caching rule of their own get
//!   `no-store`.
//!
//! Which inline scripts are the renderer's: the guard picks a secret for each request
//! ([`ScriptNonce`]); the renderer writes it as the `nonce` of every script it emits
//! ([`provide_script_nonce`]: hydration, resource data). Only scripts carrying it are
//! hashed, so a `<script>` that reached the page any other way (a name some code path
//! forgot to escape) is not allowed to run: nothing in the page's data knows the secret.

use crate::api::ApiError;
use crate::server::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::middleware::Next;
use base64::Engine;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

/// Largest request body a server function accepts.
pub const API_BODY_LIMIT: usize = 64 * 1024;

pub async fn api_body_limit(request: Request<Body>, next: Next) -> Response<Body> {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > API_BODY_LIMIT as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    // Bodies without a length (chunked) are read up to the limit, never past it.
    let bytes = match http_body_util::Limited::new(body, API_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large();
            }
            tracing::debug!(error = %err, "request body could not be read");
            return api_error(
                StatusCode::BAD_REQUEST,
                ApiError::BadRequest("The request's body could not be read.".into()),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large() -> Response<Body> {
    api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::BadRequest(format!(
            "This request is too large (at most {} KB).",
            API_BODY_LIMIT / 1024
        )),
    )
}

/// A server function's error answer: the JSON the browser's code decodes, which also reads
/// as a sentence to a person.
pub fn api_error(status: StatusCode, error: ApiError) -> Response<Body> {
    let body = serde_json::to_string(&error).unwrap_or_else(|_| String::from("{}"));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Largest HTML body the guard reads to hash its inline scripts (pages are far smaller).
const MAX_HTML_BYTES: usize = 16 * 1024 * 1024;

/// Where images may come from besides this server: Spotify's image hosts.
const IMAGE_HOSTS: &str = "https://i.scdn.co https://*.scdn.co https://*.spotifycdn.com";

/// This request's secret mark for the scripts the renderer emits (a request extension the
/// guard sets; see the module's doc). 128 random bits, base64url.
#[derive(Clone, Debug)]
pub struct ScriptNonce(pub std::sync::Arc<str>);

impl ScriptNonce {
    fn new() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        ScriptNonce(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }
}

/// In the renderer's context (the routes' and the error handler's): the guard's
/// [`ScriptNonce`] becomes the `nonce` Leptos writes on each script it emits.
pub fn provide_script_nonce() {
    use leptos::prelude::{provide_context, use_context};
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ScriptNonce>().cloned());
    if let Some(ScriptNonce(nonce)) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(nonce));
    }
}

pub async fn guard(
    State(state): State<AppState>,
    mut request: Request<Body>,
    next: Next,
) -> Response<Body> {
    if !is_safe_method(request.method()) {
        if let Err(why) = same_site(request.headers(), state.config.public_url.as_ref()) {
            tracing::warn!(
                method = %request.method(),
                path = %request.uri().path(),
                why,
                "cross-site request refused"
            );
            return refused();
        }
    }
    let https = state.auth.secure_cookies;
    let nonce = ScriptNonce::new();
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    set_default(headers, "x-content-type-options", "nosniff");
    set_default(headers, "referrer-policy", "same-origin");
    set_default(headers, "x-frame-options", "DENY");
    set_default(headers, "cross-origin-opener-policy", "same-origin");
    if https {
        set_default(
            headers,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let html = content_type.starts_with("text/html");
    if html || content_type.starts_with("application/json") {
        set_default(headers, "cache-control", "no-store");
    }
    if !html {
        set_default(
            headers,
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        );
        return response;
    }
    if headers.contains_key(header::CONTENT_ENCODING) {
        // Only static files arrive encoded, and none of them is HTML; never guess.
        set_default(headers, "content-security-policy", &policy(&[]));
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_HTML_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            tracing::error!(error = %err, "page body could not be read for its CSP");
            return plain_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be produced.",
            );
        }
    };
    let hashes = inline_script_hashes(&bytes, &nonce.0);
    if let Ok(value) = HeaderValue::from_str(&policy(&hashes)) {
        parts.headers.insert("content-security-policy", value);
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a state-changing request comes from this site. Browsers say where a request
/// comes from (`Sec-Fetch-Site`, or at least `Origin` on every POST); a request with
/// neither is not from a browser, so it cannot carry a visitor's cookies against their will.
fn same_site(headers: &HeaderMap, public_url: Option<&url::Url>) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err("Sec-Fetch-Site is not same-origin"),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "Origin is not text")?;
    if origin == "null" {
        return Err("Origin is null");
    }
    let origin = url::Url::parse(origin).map_err(|_| "Origin is not a URL")?;
    let origin_host = match (origin.host_str(), origin.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        _ => return Err("Origin has no host"),
    };
    if let Some(public) = public_url {
        if public.origin() == origin.origin() {
            return Ok(());
        }
    }
    // Without PUBLIC_URL (or behind a proxy that keeps Host): the host the browser asked.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("no Host header")?;
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{}", origin.port_or_known_default().unwrap_or(80))
    };
    if host.eq_ignore_ascii_case(&origin_host) {
        Ok(())
    } else {
        Err("Origin is another site")
    }
}

fn refused() -> Response<Body> {
    plain_text(
        StatusCode::FORBIDDEN,
        "This request came from another site and was refused. Open Personalify itself and try again.",
    )
}

/// A short answer in plain text, for a person reading it.
pub fn plain_text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(message.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn set_default(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if !headers.contains_key(name) {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

/// The page's policy: scripts from this server plus the renderer's inline scripts by hash,
/// WebAssembly compiled from this server's files; nothing framed, no plugins, no `<base>`.
fn policy(hashes: &[String]) -> String {
    let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
    for hash in hashes {
        script_src.push_str(" 'sha256-");
        script_src.push_str(hash);
        script_src.push('\'');
    }
    format!(
        "default-src 'self'; script-src {script_src}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: {IMAGE_HOSTS}; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Base64 SHA-256 of the text of each inline `<script>` in `html` whose tag carries
/// `nonce="{nonce}"` (those without `src`), each once. The search is for the nonce, which
/// only the renderer knows, so text elsewhere in the page (a `<script` in a name, an
/// unclosed tag) can neither add a hash nor hide one of the renderer's scripts.
fn inline_script_hashes(html: &[u8], nonce: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(html);
    let mark = format!(" nonce=\"{nonce}\"");
    let mut hashes: Vec<String> = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(&mark) {
        let at = from + found;
        from = at + mark.len();
        // The tag the mark is in: from its `<script` to its `>`, with no other tag between.
        let Some(open) = text[..at].rfind('<') else {
            continue;
        };
        let Some(tag_end) = text[from..].find('>').map(|i| from + i) else {
            break;
        };
        let tag = &text[open..tag_end];
        if !tag.starts_with("<script") || tag[1..].contains(['<', '>']) || tag.contains(" src=") {
            continue;
        }
        let body_start = tag_end + 1;
        let Some(close) = text[body_start..].find("</script>") else {
            break;
        };
        let body = &text[body_start..body_start + close];
        from = body_start + close;
        if body.is_empty() {
            continue;
        }
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()));
        if !hashes.contains(&hash) {
            hashes.push(hash);
        }
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn only_the_renderers_inline_scripts_are_hashed() {
        let html = br#"<head><script src="/charts.js" defer></script><script type="module" nonce="n0nce">import('/pkg/a.js')</script><title></title><script>alert('title')</script></title></head><body><p data-x="<script nonce="></p><script nonce="n0nce">window.x=1</script><script nonce="n0nce">window.x=1</script><script nonce="other">alert('guess')</script><script src="/x.js" nonce="n0nce"></script></body>"#;
        let hashes = inline_script_hashes(html, "n0nce");
        assert_eq!(
            hashes,
            vec![sha("import('/pkg/a.js')"), sha("window.x=1")],
            "the renderer's two scripts, once each; nothing injected, nothing external"
        );
        assert!(inline_script_hashes(b"<script>alert(1)</script>", "n0nce").is_empty());
    }

    #[test]
    fn a_stray_script_tag_in_the_text_hides_none_of_the_renderers() {
        // An injected opening tag that never closes, before the renderer's own script.
        let html = br#"<p><script>alert(1)<p>text</p><script nonce="n0nce">own()</script>"#;
        assert_eq!(inline_script_hashes(html, "n0nce"), vec![sha("own()")]);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let public = url::Url::parse("https://music.example.org").unwrap();
        let ok = |h: &[(&'static str, &str)], p: Option<&url::Url>| same_site(&headers(h), p);
        assert!(ok(&[("sec-fetch-site", "same-origin")], None).is_ok());
        assert!(ok(&[("sec-fetch-site", "cross-site")], None).is_err());
        assert!(ok(&[("sec-fetch-site", "same-site")], None).is_err());
        assert!(ok(&[], None).is_ok(), "not a browser");
        assert!(ok(
            &[
                ("origin", "http://127.0.0.1:3000"),
                ("host", "127.0.0.1:3000")
            ],
            None
        )
        .is_ok());
        assert!(ok(
            &[("origin", "http://evil.test"), ("host", "127.0.0.1:3000")],
            None
        )
        .is_err());
        assert!(ok(&[("origin", "null"), ("host", "127.0.0.1:3000")], None).is_err());
        assert!(ok(
            &[
                ("origin", "https://music.example.org"),
                ("host", "app:3000")
            ],
            Some(&public)
        )
        .is_ok());
        assert!(ok(
            &[("origin", "https://evil.example.org"), ("host", "app:3000")],
            Some(&public)
        )
        .is_err());
    }
}
