//! Chart options, built with charming on the server and drawn by ECharts in the browser
//! (`public/charts.js`). Every chart is a [`ChartSpec`]: the option JSON and a sentence
//! saying what it shows. Colours come from ECharts' light or dark theme in the browser;
//! the option only fixes what must not change with the theme.

use crate::domain::history::{time_label, RankSeries};
use crate::domain::{ChartSpec, GenreShare};
use charming::component::{Axis, Grid, Legend, LegendType};
use charming::datatype::CompositeValue;
use charming::element::{
    AxisLabel, AxisType, Color, Formatter, ItemStyle, Label, Tooltip, Trigger,
};
use charming::series::{Line, Pie};
use charming::Chart;

/// Genres shown as slices; the rest are summed into "other".
pub const GENRE_SLICES: usize = 8;
/// Series a rank chart shows at first; the legend turns the others on.
pub const SERIES_SHOWN: usize = 5;

fn spec(chart: &Chart, summary: String) -> ChartSpec {
    ChartSpec {
        // Compact JSON (charming's Display pretty-prints). Serialising plain data
        // cannot fail; an empty object would draw an empty chart rather than panic.
        option: serde_json::to_string(chart).unwrap_or_else(|_| "{}".into()),
        summary,
    }
}

fn base() -> Chart {
    Chart::new()
        .background_color(Color::from("transparent"))
        .animation(false)
}

fn percent(share: f64) -> f64 {
    (share * 1000.0).round() / 10.0
}

/// A donut of the top genres' shares (in percent), the rest as "other".
pub fn genre_chart(shares: &[GenreShare]) -> Option<ChartSpec> {
    if shares.is_empty() {
        return None;
    }
    let mut data: Vec<(f64, String)> = shares
        .iter()
        .take(GENRE_SLICES)
        .map(|s| (percent(s.share), s.genre.clone()))
        .collect();
    let rest: f64 = shares.iter().skip(GENRE_SLICES).map(|s| s.share).sum();
    if rest > 0.0 {
        data.push((percent(rest), "other".into()));
    }
    let summary = format!(
        "Genre chart: {}.",
        data.iter()
            .map(|(pct, genre)| format!("{genre} {pct}%"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Slice labels around a donut get cut off on a phone; a legend below wraps instead.
    let chart = base()
        .tooltip(
            Tooltip::new()
                .trigger(Trigger::Item)
                .formatter(Formatter::from("{b}: {c}%")),
        )
        .legend(Legend::new().type_(LegendType::Scroll).bottom(0))
        .series(
            Pie::new()
                .name("Genres")
                .radius(vec!["38%", "66%"])
                .center(vec!["50%", "42%"])
                .avoid_label_overlap(true)
                .item_style(ItemStyle::new().border_radius(4))
                .label(Label::new().show(false))
                .data(data),
        );
    Some(spec(&chart, summary))
}

/// Rank over time: one line per series (rank 1 at the top), a point per sync. The first
/// [`SERIES_SHOWN`] lines are on; the legend chooses which others to show.
pub fn rank_chart(what: &str, synced_at: &[String], series: &[RankSeries]) -> Option<ChartSpec> {
    if synced_at.is_empty() || series.is_empty() {
        return None;
    }
    let labels: Vec<String> = synced_at.iter().map(|at| time_label(at)).collect();
    let worst = series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .copied()
        .max()
        .unwrap_or(1);
    let mut chart = base()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(
            Legend::new()
                .type_(LegendType::Scroll)
                .top("bottom")
                .selected(
                    series
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.name.clone(), i < SERIES_SHOWN)),
                ),
        )
        .grid(
            Grid::new()
                .left(40)
                .right(16)
                .top(16)
                .bottom(72)
                .contain_label(true),
        )
        .x_axis(
            Axis::new()
                .type_(AxisType::Category)
                .boundary_gap(false)
                .data(labels),
        )
        .y_axis(
            Axis::new()
                .type_(AxisType::Value)
                .inverse(true)
                .min(1)
                .max(CompositeValue::from(i64::from(worst.max(2))))
                .min_interval(1.0)
                .axis_label(AxisLabel::new().formatter("#{value}")),
        );
    for s in series {
        let points: Vec<CompositeValue> = s
            .points
            .iter()
            .map(|p| CompositeValue::from(p.map(i64::from)))
            .collect();
        chart = chart.series(
            Line::new()
                .name(s.name.clone())
                .connect_nulls(false)
                .show_symbol(true)
                .data(points),
        );
    }
    let first = series.iter().take(3).map(|s| {
        let last = s.points.last().copied().flatten();
        match last {
            Some(rank) => format!("{} now #{rank}", s.name),
            None => format!("{} not in the latest list", s.name),
        }
    });
    let summary = format!(
        "Line chart of {what} rank over the last {} syncs: {}. The table below has every value.",
        synced_at.len(),
        first.collect::<Vec<_>>().join(", ")
    );
    Some(spec(&chart, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn shares(n: usize) -> Vec<GenreShare> {
        (0..n)
            .map(|i| GenreShare {
                genre: format!("g{i}"),
                share: 1.0 / n as f64,
            })
            .collect()
    }

    #[test]
    fn genre_chart_folds_the_tail_into_other() {
        let spec = genre_chart(&shares(10)).unwrap();
        let option: Value = serde_json::from_str(&spec.option).unwrap();
        let data = option["series"][0]["data"].as_array().unwrap();
        assert_eq!(data.len(), GENRE_SLICES + 1);
        assert_eq!(data[0]["name"], "g0");
        assert_eq!(data[0]["value"], 10.0);
        assert_eq!(data[GENRE_SLICES]["name"], "other");
        assert_eq!(data[GENRE_SLICES]["value"], 20.0);
        assert_eq!(option["series"][0]["type"], "pie");
        assert!(spec.summary.contains("g0 10%"), "{}", spec.summary);
        assert!(genre_chart(&[]).is_none());
    }

    #[test]
    fn rank_chart_has_a_line_per_series_with_gaps() {
        let series = vec![
            RankSeries {
                id: "a".into(),
                name: "Alpha".into(),
                points: vec![Some(3), Some(1)],
            },
            RankSeries {
                id: "b".into(),
                name: "</script><b>".into(),
                points: vec![None, Some(7)],
            },
        ];
        let at = vec![
            "2026-11-20T10:00:00.000Z".to_string(),
            "2026-11-21T10:00:00.000Z".to_string(),
        ];
        let spec = rank_chart("artist", &at, &series).unwrap();
        let option: Value = serde_json::from_str(&spec.option).unwrap();
        assert_eq!(option["xAxis"]["data"][0], "11-20 10:00");
        assert_eq!(option["yAxis"]["inverse"], true);
        assert_eq!(option["yAxis"]["max"], 7);
        assert_eq!(option["series"][1]["data"], serde_json::json!([null, 7]));
        assert_eq!(option["series"][1]["name"], "</script><b>");
        assert_eq!(option["legend"]["selected"]["Alpha"], true);
        assert!(spec.summary.contains("Alpha now #1"), "{}", spec.summary);
        assert!(rank_chart("artist", &[], &series).is_none());
    }
}
