//! The dashboard's data for one person and one time range, as cached in Redis
//! (`top:{spotify_id}:{time_range}`), kept per sync in MongoDB, and shown by the UI.

use super::TimeRange;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtistRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopArtist {
    /// 1 = most listened.
    pub rank: u16,
    pub id: String,
    pub name: String,
    /// `None`: Spotify did not say (2026 Development Mode), not "no genres".
    pub genres: Option<Vec<String>>,
    pub image_url: Option<String>,
    pub popularity: Option<u32>,
    /// Rank in the previous sync's list; `None`: not in it (see
    /// [`TopPayload::previous_sync_id`] for whether there was one).
    #[serde(default)]
    pub previous_rank: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopTrack {
    pub rank: u16,
    pub id: String,
    pub name: String,
    pub artists: Vec<ArtistRef>,
    pub album: Option<String>,
    pub image_url: Option<String>,
    pub duration_ms: Option<u64>,
    /// Rank in the previous sync's list, as for [`TopArtist::previous_rank`].
    #[serde(default)]
    pub previous_rank: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreShare {
    pub genre: String,
    /// Fraction of the rank-weighted listening, 0..=1; all shares sum to 1.
    pub share: f64,
}

/// Genre shares, or the honest statement that Spotify gave no genres to compute them from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Genres {
    Available { shares: Vec<GenreShare> },
    Unavailable,
}

/// Everything the dashboard shows for one range, from one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopPayload {
    pub spotify_id: String,
    pub time_range: TimeRange,
    /// The sync that produced it (its id in `sync_runs`) and when it finished, RFC 3339.
    pub sync_id: i64,
    pub synced_at: String,
    /// The sync this one's lists were compared with (the lists it replaced), for the
    /// movement badges; `None` on a range's first sync, or for payloads written before
    /// movement was computed at sync time: movement is then unknown, not "all new".
    #[serde(default)]
    pub previous_sync_id: Option<i64>,
    pub artists: Vec<TopArtist>,
    pub tracks: Vec<TopTrack>,
    pub genres: Genres,
}

impl TopPayload {
    /// Stamp each item with its rank in the lists this sync replaces: `previous` holds
    /// (id, rank) of the previous artists and tracks of this range, from the same
    /// transaction; `previous_sync_id` is the sync that wrote them (`None`: first sync).
    pub fn compare_with(
        &mut self,
        previous_sync_id: Option<i64>,
        previous_artists: &std::collections::HashMap<String, u16>,
        previous_tracks: &std::collections::HashMap<String, u16>,
    ) {
        self.previous_sync_id = previous_sync_id;
        let known = previous_sync_id.is_some();
        for artist in &mut self.artists {
            artist.previous_rank = known
                .then(|| previous_artists.get(&artist.id).copied())
                .flatten();
        }
        for track in &mut self.tracks {
            track.previous_rank = known
                .then(|| previous_tracks.get(&track.id).copied())
                .flatten();
        }
    }
}

/// Genre shares weighted by rank: in a list of N artists, the artist at rank r weighs
/// N + 1 - r (the top one N, the last one 1), split evenly across that artist's genres.
/// A bare count would let the 90th artist count as much as the 1st. Artists whose genres
/// are unknown are left out; if no artist has known genres, the shares are unavailable.
pub fn genre_shares(artists: &[TopArtist]) -> Genres {
    let n = artists.len() as f64;
    let mut weights: Vec<(String, f64)> = Vec::new();
    let mut total = 0.0;
    let mut known = false;
    for artist in artists {
        let Some(genres) = &artist.genres else {
            continue;
        };
        known = true;
        if genres.is_empty() {
            continue;
        }
        let weight = (n + 1.0 - f64::from(artist.rank)).max(1.0) / genres.len() as f64;
        for genre in genres {
            match weights.iter_mut().find(|(g, _)| g == genre) {
                Some((_, w)) => *w += weight,
                None => weights.push((genre.clone(), weight)),
            }
            total += weight;
        }
    }
    if !known {
        return Genres::Unavailable;
    }
    let mut shares: Vec<GenreShare> = weights
        .into_iter()
        .map(|(genre, w)| GenreShare {
            genre,
            share: if total > 0.0 { w / total } else { 0.0 },
        })
        .collect();
    // Largest first; ties by name so the order is stable.
    shares.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.genre.cmp(&b.genre))
    });
    Genres::Available { shares }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artist(rank: u16, genres: Option<&[&str]>) -> TopArtist {
        TopArtist {
            rank,
            id: format!("a{rank}"),
            name: format!("A{rank}"),
            genres: genres.map(|g| g.iter().map(|s| s.to_string()).collect()),
            image_url: None,
            popularity: None,
            previous_rank: None,
        }
    }

    #[test]
    fn higher_ranks_weigh_more_and_shares_sum_to_one() {
        // 3 artists: weights 3, 2, 1.
        let genres = genre_shares(&[
            artist(1, Some(&["jazz"])),
            artist(2, Some(&["pop"])),
            artist(3, Some(&["pop"])),
        ]);
        let Genres::Available { shares } = genres else {
            panic!("available")
        };
        assert_eq!(shares[0].genre, "jazz");
        assert!((shares[0].share - 0.5).abs() < 1e-9);
        assert!((shares[1].share - 0.5).abs() < 1e-9);
        // A bare count would have said pop 2/3.
    }

    #[test]
    fn several_genres_split_the_artists_weight() {
        let Genres::Available { shares } =
            genre_shares(&[artist(1, Some(&["a", "b"])), artist(2, Some(&["c"]))])
        else {
            panic!("available")
        };
        let total: f64 = shares.iter().map(|s| s.share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let c = shares.iter().find(|s| s.genre == "c").unwrap().share;
        assert!((c - 1.0 / 3.0).abs() < 1e-9, "{c}");
    }

    #[test]
    fn no_known_genres_is_unavailable_not_empty() {
        assert_eq!(
            genre_shares(&[artist(1, None), artist(2, None)]),
            Genres::Unavailable
        );
        assert_eq!(genre_shares(&[]), Genres::Unavailable);
        // Known-but-empty genre lists are available (and empty).
        assert_eq!(
            genre_shares(&[artist(1, Some(&[]))]),
            Genres::Available { shares: vec![] }
        );
    }
}
