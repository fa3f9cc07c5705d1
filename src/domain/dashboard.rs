//! What the dashboard shows for one range, and nothing more. The server builds it from the
//! stored payload ([`TopPayload`]: up to 99 items a list, every field Spotify gave) and it
//! is the page's only data, so the hydration data is no larger than what the page shows.

use super::history::Movement;
use super::{GenreShare, Genres, TimeRange, TopPayload};
use serde::{Deserialize, Serialize};

/// Rows per list on the dashboard (the full lists stay in the payload and the record).
pub const LIST_SHOWN: usize = 50;
/// Genres in the dashboard's genre list.
pub const GENRES_SHOWN: usize = 12;
/// Genres named under an artist.
const GENRES_PER_ARTIST: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardLists {
    pub range: TimeRange,
    /// The sync that wrote the lists, and when it finished (RFC 3339).
    pub sync_id: i64,
    pub synced_at: String,
    /// A previous sync exists to compare with: only then do rows show movement.
    pub compared: bool,
    /// Artists in the whole top list (the page shows the first [`LIST_SHOWN`]).
    pub artist_count: usize,
    pub artists: Vec<ArtistRow>,
    pub tracks: Vec<TrackRow>,
    /// The first [`GENRES_SHOWN`] shares, largest first.
    pub genres: Genres,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistRow {
    pub rank: u16,
    pub id: String,
    pub name: String,
    /// Up to three genres, comma-separated; empty when none are known.
    pub genres: String,
    pub image_url: Option<String>,
    pub previous_rank: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRow {
    pub rank: u16,
    pub name: String,
    /// "Artist, Artist · Album".
    pub details: String,
    pub image_url: Option<String>,
    pub previous_rank: Option<u16>,
}

impl DashboardLists {
    pub fn from_payload(payload: &TopPayload) -> Self {
        let artists = payload
            .artists
            .iter()
            .take(LIST_SHOWN)
            .map(|a| ArtistRow {
                rank: a.rank,
                id: a.id.clone(),
                name: a.name.clone(),
                genres: a
                    .genres
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .take(GENRES_PER_ARTIST)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                image_url: a.image_url.clone(),
                previous_rank: a.previous_rank,
            })
            .collect();
        let tracks = payload
            .tracks
            .iter()
            .take(LIST_SHOWN)
            .map(|t| {
                let artists = t
                    .artists
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                TrackRow {
                    rank: t.rank,
                    name: t.name.clone(),
                    details: match &t.album {
                        Some(album) => format!("{artists} · {album}"),
                        None => artists,
                    },
                    image_url: t.image_url.clone(),
                    previous_rank: t.previous_rank,
                }
            })
            .collect();
        let genres = match &payload.genres {
            Genres::Available { shares } => Genres::Available {
                shares: shares.iter().take(GENRES_SHOWN).cloned().collect(),
            },
            Genres::Unavailable => Genres::Unavailable,
        };
        DashboardLists {
            range: payload.time_range,
            sync_id: payload.sync_id,
            synced_at: payload.synced_at.clone(),
            compared: payload.previous_sync_id.is_some(),
            artist_count: payload.artists.len(),
            artists,
            tracks,
            genres,
        }
    }

    /// How a row moved since the previous sync; `None` when there is nothing to compare
    /// with (a first sync: movement is unknown, not "everything is new").
    pub fn movement(&self, rank: u16, previous_rank: Option<u16>) -> Option<Movement> {
        self.compared.then(|| Movement::since(rank, previous_rank))
    }

    /// The genre shares, when Spotify gave genres.
    pub fn genre_shares(&self) -> Option<&[GenreShare]> {
        match &self.genres {
            Genres::Available { shares } => Some(shares),
            Genres::Unavailable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ArtistRef, TopArtist, TopTrack};
    use std::collections::HashMap;

    fn payload(n: u16) -> TopPayload {
        TopPayload {
            spotify_id: "ana".into(),
            time_range: TimeRange::ShortTerm,
            sync_id: 7,
            synced_at: "2026-11-22T10:00:00.000Z".into(),
            previous_sync_id: None,
            artists: (1..=n)
                .map(|rank| TopArtist {
                    rank,
                    id: format!("a{rank}"),
                    name: format!("Artist {rank}"),
                    genres: Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
                    image_url: None,
                    popularity: Some(50),
                    previous_rank: None,
                })
                .collect(),
            tracks: (1..=n)
                .map(|rank| TopTrack {
                    rank,
                    id: format!("t{rank}"),
                    name: format!("Track {rank}"),
                    artists: vec![
                        ArtistRef {
                            id: "x".into(),
                            name: "X".into(),
                        },
                        ArtistRef {
                            id: "y".into(),
                            name: "Y".into(),
                        },
                    ],
                    album: Some("Album".into()),
                    image_url: None,
                    duration_ms: Some(1000),
                    previous_rank: None,
                })
                .collect(),
            genres: Genres::Available {
                shares: (0..20)
                    .map(|i| GenreShare {
                        genre: format!("g{i}"),
                        share: 0.05,
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn the_view_holds_what_the_page_shows_and_no_more() {
        let lists = DashboardLists::from_payload(&payload(99));
        assert_eq!(lists.artist_count, 99);
        assert_eq!(lists.artists.len(), LIST_SHOWN);
        assert_eq!(lists.tracks.len(), LIST_SHOWN);
        assert_eq!(lists.artists[0].genres, "a, b, c");
        assert_eq!(lists.tracks[0].details, "X, Y · Album");
        assert_eq!(lists.genre_shares().map(<[_]>::len), Some(GENRES_SHOWN));
    }

    #[test]
    fn movement_comes_from_the_sync_that_wrote_the_lists() {
        let mut p = payload(3);
        // First sync: nothing to compare with, so no movement at all.
        let first = DashboardLists::from_payload(&p);
        assert!(!first.compared);
        assert_eq!(first.movement(1, None), None);

        let before_artists = HashMap::from([("a1".to_string(), 3), ("a3".to_string(), 1)]);
        let before_tracks = HashMap::from([("t2".to_string(), 2)]);
        p.compare_with(Some(6), &before_artists, &before_tracks);
        let lists = DashboardLists::from_payload(&p);
        let moves: Vec<_> = lists
            .artists
            .iter()
            .map(|a| lists.movement(a.rank, a.previous_rank))
            .collect();
        assert_eq!(
            moves,
            vec![
                Some(Movement::Up(2)),
                Some(Movement::New),
                Some(Movement::Down(2))
            ]
        );
        assert_eq!(
            lists.movement(lists.tracks[1].rank, lists.tracks[1].previous_rank),
            Some(Movement::Same)
        );
    }
}
