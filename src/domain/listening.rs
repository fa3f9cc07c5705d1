//! What a person's plays say (the Listening page): totals and streaks, minutes per day,
//! activity by weekday and hour, and top artists and tracks by minutes listened beside
//! Spotify's own top lists. Computed on the analytics node, queried from `main`.

use super::artist::MonthPlays;
use super::TimeRange;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningView {
    pub range: TimeRange,
    /// The IANA time zone days, weekdays and hours are in (the page says so).
    pub time_zone: String,
    /// Whether the listener chose it (else it is UTC, and the page offers the browser's).
    pub zone_set: bool,
    pub totals: Totals,
    /// Days with plays, oldest first, from `days_from` on (the calendar).
    pub days: Vec<DayMinutes>,
    /// The calendar's first day (YYYY-MM-DD): the first of the month a year back.
    pub days_from: String,
    /// Minutes per weekday (Monday first) and hour, over `range`: `week[d][h]`.
    pub week: Vec<Vec<u32>>,
    /// By minutes listened in `range`, most first.
    pub top_artists: Vec<ByMinutes>,
    pub top_tracks: Vec<ByMinutes>,
    /// Spotify's own top artists and tracks for `range` (names), best first.
    pub spotify_artists: Vec<String>,
    pub spotify_tracks: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub plays: u64,
    pub minutes: u64,
    pub tracks: u64,
    pub artists: u64,
    /// Date (YYYY-MM-DD) of the first and the latest play.
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    pub days_listened: u32,
    /// Days in a row with plays, up to today (or yesterday: today may not have started).
    pub current_streak: u32,
    pub longest_streak: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayMinutes {
    /// YYYY-MM-DD.
    pub day: String,
    pub minutes: u32,
    pub plays: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByMinutes {
    pub name: String,
    /// The artist, for a track.
    pub artist: Option<String>,
    pub minutes: u32,
    pub plays: u32,
    /// The artist page to link to, when the artist is in the person's lists.
    pub artist_id: Option<String>,
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian), `None` if malformed.
pub fn day_number(day: &str) -> Option<i64> {
    let mut parts = day.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// (current, longest) runs of consecutive days in `days` (day numbers, any order,
/// duplicates allowed). The current run ends `today` or the day before.
pub fn streaks(days: &[i64], today: i64) -> (u32, u32) {
    let mut sorted = days.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let (mut longest, mut run, mut prev) = (0u32, 0u32, None::<i64>);
    for &d in &sorted {
        run = if prev == Some(d - 1) { run + 1 } else { 1 };
        longest = longest.max(run);
        prev = Some(d);
    }
    let current = match sorted.last() {
        Some(&last) if last == today || last == today - 1 => run,
        _ => 0,
    };
    (current, longest)
}

/// The longest run of consecutive days among `days` (the calendar's year, say).
pub fn longest_run(days: &[DayMinutes]) -> u32 {
    let numbers: Vec<i64> = days.iter().filter_map(|d| day_number(&d.day)).collect();
    // Any day serves as "today": only the longest run is kept.
    streaks(&numbers, 0).1
}

/// Weekday names, Monday first (ISO), as the week grid's rows.
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Where the charts' options come from (`server::charts`; never kept by the browser:
/// plays arrive every few minutes).
pub const DAYS_CHART_URL: &str = "/charts/listening/days";

pub fn week_chart_url(range: TimeRange) -> String {
    format!("/charts/listening/week?range={}", range.as_str())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "1 December 2025" for `2025-12-01`; the text as it is when it is no such date.
pub fn date_label(day: &str) -> String {
    let mut parts = day.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return day.to_string();
    };
    let month = m
        .parse::<usize>()
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|i| MONTHS.get(i));
    match (month, d.parse::<u32>()) {
        (Some(month), Ok(d)) => format!("{d} {month} {y}"),
        _ => day.to_string(),
    }
}

/// Hours and minutes, e.g. "12 h 5 min", "45 min".
pub fn duration_label(minutes: u64) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Plays and minutes per month (YYYY-MM, oldest first) of `days`: the heatmap as a table,
/// and an artist's plays over time.
pub fn months(days: &[DayMinutes]) -> Vec<MonthPlays> {
    let mut out: Vec<MonthPlays> = Vec::new();
    for d in days {
        let month = d.day.get(..7).unwrap_or(&d.day);
        match out.last_mut() {
            Some(m) if m.month == month => {
                m.plays += d.plays;
                m.minutes += d.minutes;
            }
            _ => out.push(MonthPlays {
                month: month.to_string(),
                plays: d.plays,
                minutes: d.minutes,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_match_the_calendar() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2000-03-01"), Some(11_017));
        assert_eq!(day_number("2026-11-29"), Some(20_786));
        assert_eq!(
            day_number("2024-02-29").map(|d| d + 1),
            day_number("2024-03-01")
        );
        assert_eq!(day_number("2026-13-01"), None);
        assert_eq!(day_number("nonsense"), None);
    }

    #[test]
    fn streaks_count_runs_and_the_current_one_ends_today_or_yesterday() {
        let today = 100;
        assert_eq!(streaks(&[], today), (0, 0));
        assert_eq!(streaks(&[90, 91, 92, 95, 99, 100], today), (2, 3));
        assert_eq!(streaks(&[97, 98, 99], today), (3, 3), "yesterday counts");
        assert_eq!(
            streaks(&[96, 97, 98], today),
            (0, 3),
            "a day missed ends it"
        );
        assert_eq!(
            streaks(&[100, 99, 99, 98], today),
            (3, 3),
            "order and repeats"
        );
    }

    #[test]
    fn the_longest_run_is_counted_within_the_days_given() {
        let day = |d: &str| DayMinutes {
            day: d.into(),
            minutes: 1,
            plays: 1,
        };
        assert_eq!(longest_run(&[]), 0);
        let days = [
            day("2026-02-27"),
            day("2026-02-28"),
            day("2026-03-01"),
            day("2026-03-03"),
        ];
        assert_eq!(longest_run(&days), 3, "across the end of February");
        assert_eq!(longest_run(&days[3..]), 1);
    }

    #[test]
    fn dates_read_as_words() {
        assert_eq!(date_label("2025-12-01"), "1 December 2025");
        assert_eq!(date_label("2026-01-31"), "31 January 2026");
        assert_eq!(date_label("2026-13-01"), "2026-13-01");
        assert_eq!(date_label("soon"), "soon");
    }

    #[test]
    fn months_sum_the_days() {
        let day = |d: &str, minutes| DayMinutes {
            day: d.into(),
            minutes,
            plays: 1,
        };
        let days = [
            day("2026-10-30", 5),
            day("2026-10-31", 7),
            day("2026-11-01", 3),
        ];
        let month = |m: &str, plays, minutes| MonthPlays {
            month: m.into(),
            plays,
            minutes,
        };
        assert_eq!(
            months(&days),
            vec![month("2026-10", 2, 12), month("2026-11", 1, 3)]
        );
    }
}
