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

/// This instance in numbers: every listener's plays, all time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTotals {
    /// Listeners with at least one play.
    pub listeners: i64,
    pub plays: i64,
    /// Minutes listened, rounded down.
    pub minutes: i64,
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

/// 1234567 as "1,234,567".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-12345), "-12,345");
        assert_eq!(thousands(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn a_track_member_splits_into_track_and_artist() {
        let member = format!("Song{TRACK_SEPARATOR}Band");
        assert_eq!(split_track(&member), ("Song".into(), "Band".into()));
        assert_eq!(split_track("Lonely"), ("Lonely".into(), String::new()));
    }
}
