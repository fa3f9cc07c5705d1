//! What the simulated objects link to: generated SVG covers (`/images/{kind}/{id}.svg`, a
//! gradient and initials, a few hundred bytes) and the "open in Spotify" page
//! (`/open/{kind}/{id}`), which says plainly that the item is simulated.

use super::rng::{hash, tag};
use super::tastes::LISTENERS;
use super::{Params, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The name an image or page is about, if `kind`/`id` names something that exists.
fn name_of<'a>(sim: &'a Shared, kind: &str, id: &str) -> Option<&'a str> {
    let c = &sim.catalogue;
    match kind {
        "artist" => c.artist_by_id(id).map(|a| a.name.as_str()),
        "album" => c.album_by_id(id).map(|a| a.name.as_str()),
        "track" => c.track_by_id(id).map(|t| t.name.as_str()),
        "user" => LISTENERS
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.display_name),
        _ => None,
    }
}

/// Up to two initials, skipping a leading "The" ("The Velvet Harbors" → "VH").
fn initials(name: &str) -> String {
    let mut words: Vec<&str> = name.split_whitespace().collect();
    if words.len() > 1 && words[0].eq_ignore_ascii_case("the") {
        words.remove(0);
    }
    words
        .iter()
        .filter_map(|w| w.chars().next())
        .flat_map(char::to_uppercase)
        .take(2)
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A square cover: a diagonal gradient between two hues picked from the id, and initials.
pub(crate) fn svg(seed: u64, id: &str, name: &str, size: u32) -> String {
    let h = hash(seed, &[tag("cover"), tag(id)]);
    let hue = h % 360;
    let hue2 = (hue + 40 + (h >> 16) % 100) % 360;
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 100 100">"#,
            r#"<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">"#,
            r#"<stop offset="0" stop-color="hsl({hue},70%,58%)"/><stop offset="1" stop-color="hsl({hue2},65%,28%)"/>"#,
            r#"</linearGradient></defs><rect width="100" height="100" fill="url(#g)"/>"#,
            r##"<text x="50" y="50" dy=".35em" text-anchor="middle" font-family="system-ui,sans-serif" font-size="36" font-weight="700" fill="#fff" fill-opacity=".9">{initials}</text></svg>"##,
        ),
        size = size,
        hue = hue,
        hue2 = hue2,
        initials = escape(&initials(name)),
    )
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

pub(crate) async fn image(
    State(sim): State<Arc<Shared>>,
    Path((kind, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(id) = file.strip_suffix(".svg") else {
        return not_found();
    };
    let Some(name) = name_of(&sim, &kind, id) else {
        return not_found();
    };
    // `size` only sets the intrinsic size (the drawing is a vector); bounded all the same.
    let size = Params::query(query.as_deref())
        .get("size")
        .and_then(|s| s.parse::<u32>().ok())
        .map_or(640, |s| s.clamp(16, 2048));
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            // Same seed, same picture; a day is long enough and short enough.
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        svg(sim.catalogue.seed, id, name, size),
    )
        .into_response()
}

pub(crate) async fn open_page(
    State(sim): State<Arc<Shared>>,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let Some(name) = name_of(&sim, &kind, &id) else {
        return not_found();
    };
    let name = escape(name);
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{name} · Personalify demo</title>\
         <p><strong>{name}</strong> is a {kind} in Personalify's simulated demo catalogue; \
         it does not exist on Spotify.</p>",
        kind = escape(&kind),
    );
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_skip_the_article_and_stop_at_two() {
        assert_eq!(initials("The Velvet Harbors"), "VH");
        assert_eq!(initials("Nali Koroma Tess"), "NK");
        assert_eq!(initials("lumora"), "L");
        assert_eq!(initials("The"), "T");
    }

    #[test]
    fn covers_are_small_escaped_and_stable() {
        let a = svg(1, "abc", "<Sari> & co", 640);
        assert!(a.starts_with("<svg "));
        assert!(a.contains(">&lt;&amp;<"), "{a}");
        assert!(a.len() < 700, "{} bytes", a.len());
        assert_eq!(a, svg(1, "abc", "<Sari> & co", 640));
        assert_ne!(a, svg(1, "abd", "<Sari> & co", 640));
    }
}
