//! Spotify's JSON objects, field for field, built from catalogue entries. Keys appear in the
//! order Spotify sends them. In the stripped (2026 Development Mode) shape the removed
//! fields are absent, not null, which is what clients must cope with.

use super::catalogue::{Album, Artist, Catalogue, Track, GENRES};
use super::tastes::{profile, LISTENERS};
use serde::Serialize;

/// Everything an object needs besides the catalogue entry.
#[derive(Clone, Copy)]
pub(crate) struct Shape<'a> {
    /// Absolute URL of the simulator, no trailing slash.
    pub base: &'a str,
    pub stripped: bool,
}

impl Shape<'_> {
    fn href(&self, kind: &str, id: &str) -> String {
        format!("{}/v1/{kind}s/{id}", self.base)
    }

    /// Where "open in Spotify" leads: a small page of the simulator, since the ids are
    /// invented and open.spotify.com would show a 404.
    fn external_urls(&self, kind: &str, id: &str) -> ExternalUrls {
        ExternalUrls {
            spotify: format!("{}/open/{kind}/{id}", self.base),
        }
    }

    fn images(&self, kind: &str, id: &str, sizes: &[u32]) -> Vec<Image> {
        sizes
            .iter()
            .map(|&size| Image {
                url: format!("{}/images/{kind}/{id}.svg?size={size}", self.base),
                height: size,
                width: size,
            })
            .collect()
    }
}

#[derive(Serialize)]
pub(crate) struct ExternalUrls {
    pub spotify: String,
}

#[derive(Serialize)]
pub(crate) struct Image {
    pub url: String,
    pub height: u32,
    pub width: u32,
}

#[derive(Serialize)]
pub(crate) struct Followers {
    /// Always null at Spotify.
    pub href: Option<String>,
    pub total: u64,
}

#[derive(Serialize)]
pub(crate) struct ArtistObject<'a> {
    pub external_urls: ExternalUrls,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers: Option<Followers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genres: Option<Vec<&'static str>>,
    pub href: String,
    pub id: &'a str,
    pub images: Vec<Image>,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popularity: Option<u8>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub uri: String,
}

#[derive(Serialize)]
pub(crate) struct SimplifiedArtist<'a> {
    pub external_urls: ExternalUrls,
    pub href: String,
    pub id: &'a str,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub uri: String,
}

#[derive(Serialize)]
pub(crate) struct AlbumObject<'a> {
    pub album_type: &'static str,
    pub artists: Vec<SimplifiedArtist<'a>>,
    pub external_urls: ExternalUrls,
    pub href: String,
    pub id: &'a str,
    pub images: Vec<Image>,
    pub name: &'a str,
    pub release_date: &'a str,
    pub release_date_precision: &'static str,
    pub total_tracks: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub uri: String,
}

#[derive(Serialize)]
pub(crate) struct TrackObject<'a> {
    pub album: AlbumObject<'a>,
    pub artists: Vec<SimplifiedArtist<'a>>,
    pub disc_number: u32,
    pub duration_ms: u32,
    pub explicit: bool,
    pub external_urls: ExternalUrls,
    pub href: String,
    pub id: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popularity: Option<u8>,
    pub preview_url: Option<String>,
    pub track_number: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub uri: String,
}

#[derive(Serialize)]
pub(crate) struct UserObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'static str>,
    pub display_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'static str>,
    pub external_urls: ExternalUrls,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers: Option<Followers>,
    pub href: String,
    pub id: &'static str,
    pub images: Vec<Image>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<&'static str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub uri: String,
}

/// Spotify's paging object.
#[derive(Serialize)]
pub(crate) struct Paging<T> {
    pub href: String,
    pub items: Vec<T>,
    pub limit: u32,
    pub next: Option<String>,
    pub offset: u32,
    pub previous: Option<String>,
    pub total: u32,
}

#[derive(Serialize)]
pub(crate) struct PlayHistory<'a> {
    pub track: TrackObject<'a>,
    pub played_at: String,
    /// We never simulate a playlist or album context.
    pub context: Option<()>,
}

#[derive(Serialize)]
pub(crate) struct Cursors {
    pub after: String,
    pub before: String,
}

/// The cursor-based paging object of recently played.
#[derive(Serialize)]
pub(crate) struct CursorPaging<'a> {
    pub items: Vec<PlayHistory<'a>>,
    pub next: Option<String>,
    pub cursors: Option<Cursors>,
    pub limit: u32,
    pub href: String,
}

pub(crate) fn artist<'a>(shape: Shape<'_>, a: &'a Artist) -> ArtistObject<'a> {
    let full = !shape.stripped;
    ArtistObject {
        external_urls: shape.external_urls("artist", &a.id),
        followers: full.then_some(Followers {
            href: None,
            total: a.followers,
        }),
        genres: full.then(|| a.genres.iter().map(|&g| GENRES[g]).collect()),
        href: shape.href("artist", &a.id),
        id: &a.id,
        images: shape.images("artist", &a.id, &[640, 320, 160]),
        name: &a.name,
        popularity: full.then_some(a.popularity),
        kind: "artist",
        uri: format!("spotify:artist:{}", a.id),
    }
}

fn simplified_artist<'a>(shape: Shape<'_>, a: &'a Artist) -> SimplifiedArtist<'a> {
    SimplifiedArtist {
        external_urls: shape.external_urls("artist", &a.id),
        href: shape.href("artist", &a.id),
        id: &a.id,
        name: &a.name,
        kind: "artist",
        uri: format!("spotify:artist:{}", a.id),
    }
}

fn album<'a>(shape: Shape<'_>, c: &'a Catalogue, al: &'a Album) -> AlbumObject<'a> {
    AlbumObject {
        album_type: al.album_type,
        artists: vec![simplified_artist(shape, &c.artists[al.artist])],
        external_urls: shape.external_urls("album", &al.id),
        href: shape.href("album", &al.id),
        id: &al.id,
        images: shape.images("album", &al.id, &[640, 300, 64]),
        name: &al.name,
        release_date: &al.release_date,
        release_date_precision: "day",
        total_tracks: al.total_tracks,
        kind: "album",
        uri: format!("spotify:album:{}", al.id),
    }
}

pub(crate) fn track<'a>(shape: Shape<'_>, c: &'a Catalogue, t: &'a Track) -> TrackObject<'a> {
    let artists = std::iter::once(t.artist)
        .chain(t.featured)
        .map(|a| simplified_artist(shape, &c.artists[a]))
        .collect();
    TrackObject {
        album: album(shape, c, &c.albums[t.album]),
        artists,
        disc_number: 1,
        duration_ms: t.duration_ms,
        explicit: t.explicit,
        external_urls: shape.external_urls("track", &t.id),
        href: shape.href("track", &t.id),
        id: &t.id,
        name: &t.name,
        popularity: (!shape.stripped).then_some(t.popularity),
        preview_url: None,
        track_number: t.track_number,
        kind: "track",
        uri: format!("spotify:track:{}", t.id),
    }
}

pub(crate) fn user(shape: Shape<'_>, index: usize) -> UserObject {
    let (u, p) = (&LISTENERS[index], profile(index));
    let full = !shape.stripped;
    UserObject {
        country: full.then_some(p.country),
        display_name: u.display_name,
        email: full.then_some(p.email),
        external_urls: shape.external_urls("user", u.id),
        followers: full.then_some(Followers {
            href: None,
            total: p.followers,
        }),
        href: shape.href("user", u.id),
        id: u.id,
        images: shape.images("user", u.id, &[300, 64]),
        product: full.then_some("premium"),
        kind: "user",
        uri: format!("spotify:user:{}", u.id),
    }
}
