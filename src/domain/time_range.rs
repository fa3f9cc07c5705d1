use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Spotify's three windows for "top" items, named as the Web API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeRange {
    /// About the last 4 weeks.
    ShortTerm,
    /// About the last 6 months.
    MediumTerm,
    /// About the last year.
    LongTerm,
}

impl TimeRange {
    pub const ALL: [TimeRange; 3] = [Self::ShortTerm, Self::MediumTerm, Self::LongTerm];

    /// The Web API's spelling, also used in URLs, cache keys and database rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShortTerm => "short_term",
            Self::MediumTerm => "medium_term",
            Self::LongTerm => "long_term",
        }
    }

    /// What a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::ShortTerm => "4 weeks",
            Self::MediumTerm => "6 months",
            Self::LongTerm => "1 year",
        }
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time range {0:?}: expected short_term, medium_term or long_term")]
pub struct UnknownTimeRange(pub String);

impl FromStr for TimeRange {
    type Err = UnknownTimeRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|range| range.as_str() == s)
            .ok_or_else(|| UnknownTimeRange(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_api_spelling_and_round_trips() {
        for range in TimeRange::ALL {
            assert_eq!(range.as_str().parse::<TimeRange>(), Ok(range));
            assert_eq!(
                serde_json::to_string(&range).unwrap(),
                format!("\"{}\"", range.as_str())
            );
        }
    }

    #[test]
    fn rejects_unknown_ranges_with_a_readable_message() {
        let err = "forever".parse::<TimeRange>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown time range \"forever\": expected short_term, medium_term or long_term"
        );
        assert!("SHORT_TERM".parse::<TimeRange>().is_err());
    }
}
