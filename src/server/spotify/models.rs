//! The Web API's JSON, typed. Every field Spotify may drop (Development Mode since 2026
//! drops popularity, followers, email, country and often genres) is optional, so a missing
//! field is "unknown", never a parse failure or a made-up zero.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Image {
    pub url: String,
    pub height: Option<u32>,
    pub width: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Followers {
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Me {
    pub id: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub images: Vec<Image>,
    pub country: Option<String>,
    pub email: Option<String>,
    pub product: Option<String>,
    pub followers: Option<Followers>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Artist {
    pub id: String,
    pub name: String,
    /// `None` when Spotify did not send genres: unknown, not "no genres".
    pub genres: Option<Vec<String>>,
    pub popularity: Option<u32>,
    pub followers: Option<Followers>,
    #[serde(default)]
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SimplifiedArtist {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Album {
    pub id: String,
    pub name: String,
    pub album_type: Option<String>,
    pub release_date: Option<String>,
    #[serde(default)]
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Track {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub artists: Vec<SimplifiedArtist>,
    pub album: Option<Album>,
    pub duration_ms: Option<u64>,
    pub explicit: Option<bool>,
    pub popularity: Option<u32>,
    pub preview_url: Option<String>,
}

/// A page of results (`/me/top/...`).
#[derive(Debug, Clone, Deserialize)]
pub struct Paging<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    pub next: Option<String>,
    pub total: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PlayHistory {
    pub track: Track,
    /// RFC 3339, e.g. "2026-11-21T10:15:00.000Z".
    pub played_at: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Cursors {
    pub after: Option<String>,
    pub before: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecentlyPlayed {
    #[serde(default)]
    pub items: Vec<PlayHistory>,
    pub next: Option<String>,
    pub cursors: Option<Cursors>,
}

/// `{"error":{"status":400,"message":"..."}}`, the Web API's error body.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2026_stripped_artist_shape_parses_with_unknown_fields() {
        let json = r#"{"id":"0TnOYISbd1XYRBk9myaseg","name":"Pitbull","type":"artist",
            "uri":"spotify:artist:0TnOYISbd1XYRBk9myaseg","images":[]}"#;
        let artist: Artist = serde_json::from_str(json).unwrap();
        assert_eq!(artist.genres, None);
        assert_eq!(artist.popularity, None);
        assert_eq!(artist.followers, None);
    }

    #[test]
    fn an_empty_genre_list_stays_distinct_from_a_missing_one() {
        let artist: Artist =
            serde_json::from_str(r#"{"id":"a","name":"A","genres":[],"popularity":3}"#).unwrap();
        assert_eq!(artist.genres, Some(vec![]));
        assert_eq!(artist.popularity, Some(3));
    }
}
