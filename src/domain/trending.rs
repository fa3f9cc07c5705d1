//! Trending on this instance: the most played artists and tracks of every listener here,
//! today and over the last seven days (UTC days).

use serde::{Deserialize, Serialize};

/// One window's lists, most played first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trend {
    /// (artist, plays)
    pub artists: Vec<(String, i64)>,
    /// (track, artist, plays)
    pub tracks: Vec<(String, String, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendingView {
    /// The UTC day "today" is.
    pub day: String,
    pub today: Trend,
    pub week: Trend,
    /// Some days were counted again from the plays for this answer (Redis had lost them,
    /// or a write could not be added to them).
    pub rebuilt_days: u32,
    /// Where those days were counted: "the read replica" or "the analytics nodes".
    pub counted_on: Option<String>,
}

/// How a track is kept as one sorted-set member: its name and its artist's, joined by a
/// character no name holds (the unit separator).
pub const TRACK_SEPARATOR: char = '\u{1f}';

/// A track member as (track, artist).
pub fn split_track(member: &str) -> (String, String) {
    match member.split_once(TRACK_SEPARATOR) {
        Some((track, artist)) => (track.to_string(), artist.to_string()),
        None => (member.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_member_splits_into_track_and_artist() {
        let member = format!("Song{TRACK_SEPARATOR}Band");
        assert_eq!(split_track(&member), ("Song".into(), "Band".into()));
        assert_eq!(split_track("Lonely"), ("Lonely".into(), String::new()));
    }
}
