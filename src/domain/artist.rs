//! The artist page: one artist as the signed-in person knows them, gathered from every
//! store (metadata and ranks from PostgreSQL, rank history from MongoDB, a view counter
//! from Redis, cross-user figures from PostgreSQL).

use super::history::RankSeries;
use super::TimeRange;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistPage {
    pub id: String,
    pub name: String,
    pub image_url: Option<String>,
    /// `None`: Spotify did not say.
    pub genres: Option<Vec<String>>,
    pub popularity: Option<u32>,
    pub followers: Option<u64>,
    /// The artist's rank in the person's top artists now, per range (`None`: not in it).
    pub ranks: Vec<RangeRank>,
    /// The person's top tracks by this artist, best rank first.
    pub tracks: Vec<ArtistTrack>,
    /// Rank over the recent syncs, per range; `None` when MongoDB could not be read.
    pub history: Option<ArtistHistory>,
    /// How often this artist page was opened on this server (Redis); `None` when Redis is
    /// unavailable.
    pub views: Option<i64>,
    /// People on this server with the artist in a top list, of all people here.
    pub listeners: Listeners,
    /// The person's plays of the artist, from the analytics node; `None` when it did not
    /// answer.
    pub plays: Option<ArtistPlays>,
}

/// The person's plays of one artist (matched by name: an export's plays carry no ids),
/// and how many people on this server have played them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistPlays {
    pub plays: u32,
    pub minutes: u32,
    /// Date (YYYY-MM-DD) of the first play.
    pub first_day: Option<String>,
    /// Plays and minutes per month (YYYY-MM), oldest first, months with plays only.
    pub months: Vec<MonthPlays>,
    /// People on this server with plays of the artist (the person included).
    pub listeners: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthPlays {
    pub month: String,
    pub plays: u32,
    pub minutes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRank {
    pub range: TimeRange,
    pub rank: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistTrack {
    pub id: String,
    pub name: String,
    pub album: Option<String>,
    pub image_url: Option<String>,
    /// Its rank in the person's top tracks, per range it is in (best first).
    pub ranks: Vec<(TimeRange, u16)>,
}

/// `synced_at[i]` (RFC 3339, oldest first) is the time of every range's `points[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistHistory {
    /// The newest sync it covers (the chart's URL names it); `None` before any sync.
    pub sync_id: Option<i64>,
    pub synced_at: Vec<String>,
    pub ranges: Vec<(TimeRange, Vec<Option<u16>>)>,
}

impl ArtistHistory {
    /// The ranges the artist was ever in over these syncs, as chart lines.
    pub fn series(&self) -> Vec<RankSeries> {
        self.ranges
            .iter()
            .filter(|(_, points)| points.iter().any(Option::is_some))
            .map(|(range, points)| RankSeries {
                id: range.as_str().into(),
                name: range.label().into(),
                points: points.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listeners {
    pub with_artist: i64,
    pub total: i64,
}

/// What Spotify ids look like (22 base62 characters; a little slack for other catalogues):
/// anything else is not looked up at all.
pub fn is_plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_any_lookup() {
        assert!(is_plausible_id("4Z8W4fKeB5YxbusRsdQVPb"));
        assert!(!is_plausible_id(""));
        assert!(!is_plausible_id("abc/../def"));
        assert!(!is_plausible_id("a b"));
        assert!(!is_plausible_id("%27%20OR%201=1"));
        assert!(!is_plausible_id(&"a".repeat(65)));
    }
}
