//! Charts as pages name them. The ECharts option is built on the server (charming,
//! `server::charts`) and fetched by `public/charts.js` from the URL a chart box names, only
//! when the box comes near the viewport; so neither the HTML nor the hydration data carries
//! it, and a page view whose chart is never scrolled to never builds it. What the page does
//! carry is the chart's accessible name, said from the same data the page already shows.

use super::history::RankSeries;
use super::{GenreShare, TimeRange};

/// Genres shown as slices; the rest are summed into "other".
pub const GENRE_SLICES: usize = 8;

/// A share (0..=1) as a percentage with one decimal.
pub fn percent(share: f64) -> f64 {
    (share * 1000.0).round() / 10.0
}

/// The donut's slices: the first [`GENRE_SLICES`] genres in percent and the rest as
/// "other" (shares sum to 1, so the rest is what the first slices leave).
pub fn genre_slices(shares: &[GenreShare]) -> Vec<(String, f64)> {
    let mut slices: Vec<(String, f64)> = shares
        .iter()
        .take(GENRE_SLICES)
        .map(|s| (s.genre.clone(), percent(s.share)))
        .collect();
    if shares.len() > GENRE_SLICES {
        let shown: f64 = shares.iter().take(GENRE_SLICES).map(|s| s.share).sum();
        let rest = (1.0 - shown).max(0.0);
        if rest > 0.0 {
            slices.push(("other".into(), percent(rest)));
        }
    }
    slices
}

/// The genre donut in words (its accessible name).
pub fn genre_summary(shares: &[GenreShare]) -> String {
    format!(
        "Genre chart: {}.",
        genre_slices(shares)
            .iter()
            .map(|(genre, pct)| format!("{genre} {pct}%"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A rank-over-time chart in words: `what` ("artist", "track", "this artist's") over
/// `syncs` syncs, the first three lines and where they are now.
pub fn rank_summary(what: &str, syncs: usize, series: &[RankSeries]) -> String {
    let first = series
        .iter()
        .take(3)
        .map(|s| match s.points.last().copied().flatten() {
            Some(rank) => format!("{} now #{rank}", s.name),
            None => format!("{} not in the latest list", s.name),
        });
    format!(
        "Line chart of {what} rank over the last {syncs} syncs: {}. The table below has every value.",
        first.collect::<Vec<_>>().join(", ")
    )
}

/// Which list of the history page a rank chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankList {
    Artists,
    Tracks,
}

impl RankList {
    pub fn as_str(self) -> &'static str {
        match self {
            RankList::Artists => "artists",
            RankList::Tracks => "tracks",
        }
    }
}

// Chart URLs carry the sync they draw: the response for a URL never changes, so the
// browser may keep it, and a new sync is a new URL.

pub fn genre_chart_url(range: TimeRange, sync_id: i64) -> String {
    format!("/charts/genres?range={}&sync={sync_id}", range.as_str())
}

pub fn rank_chart_url(range: TimeRange, list: RankList, sync_id: i64) -> String {
    format!(
        "/charts/history?range={}&list={}&sync={sync_id}",
        range.as_str(),
        list.as_str()
    )
}

pub fn artist_chart_url(artist_id: &str, sync_id: i64) -> String {
    format!("/charts/artist/{artist_id}?sync={sync_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(n: usize) -> Vec<GenreShare> {
        (0..n)
            .map(|i| GenreShare {
                genre: format!("g{i}"),
                share: 1.0 / n as f64,
            })
            .collect()
    }

    #[test]
    fn slices_fold_the_tail_into_other() {
        let slices = genre_slices(&shares(10));
        assert_eq!(slices.len(), GENRE_SLICES + 1);
        assert_eq!(slices[0], ("g0".to_string(), 10.0));
        assert_eq!(slices[GENRE_SLICES], ("other".to_string(), 20.0));
        // Only the first twelve shares reach the page; "other" is still the whole rest.
        let twelve: Vec<GenreShare> = shares(20).into_iter().take(12).collect();
        assert_eq!(genre_slices(&twelve)[GENRE_SLICES].1, 60.0);
        assert!(genre_summary(&shares(10)).contains("g0 10%"));
        assert_eq!(genre_slices(&shares(3)).len(), 3);
    }

    #[test]
    fn rank_summary_names_the_first_lines() {
        let series = vec![
            RankSeries {
                id: "a".into(),
                name: "Alpha".into(),
                points: vec![Some(3), Some(1)],
            },
            RankSeries {
                id: "b".into(),
                name: "Beta".into(),
                points: vec![Some(2), None],
            },
        ];
        let said = rank_summary("artist", 2, &series);
        assert!(said.contains("Alpha now #1"), "{said}");
        assert!(said.contains("Beta not in the latest list"), "{said}");
        assert!(said.contains("last 2 syncs"), "{said}");
    }
}
