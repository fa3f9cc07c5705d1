//! Chart options, built with charming on the server and drawn by ECharts in the browser
//! (`public/charts.js`), which fetches them from the `/charts/...` URLs the pages name
//! (`domain::chart`). A chart is built when a reader's browser asks for it, from data the
//! pages' own reads already cached, and the URL names its sync, so the browser keeps it.
//! Colours come from ECharts' light or dark theme in the browser; the option only fixes
//! what must not change with the theme.

use crate::domain::artist::is_plausible_id;
use crate::domain::chart::{genre_slices, RankList};
use crate::domain::history::{time_label, RankSeries};
use crate::domain::listening::{DayMinutes, WEEKDAYS};
use crate::domain::{GenreShare, Genres, TimeRange};
use crate::server::auth::session::{self, SessionUser};
use crate::server::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use charming::component::{Axis, Grid, Legend, LegendType};
use charming::component::{Calendar, VisualMap, VisualMapChannel};
use charming::datatype::CompositeValue;
use charming::datatype::{DataFrame, DataPoint};
use charming::element::{
    AxisLabel, AxisType, Color, Formatter, ItemStyle, Label, Tooltip, Trigger,
};
use charming::element::{CoordinateSystem, Orient, Range};
use charming::series::{Heatmap, Line, Pie};
use charming::Chart;
use serde_json::json;
use std::collections::HashMap;

/// Series a rank chart shows at first; the legend turns the others on.
pub const SERIES_SHOWN: usize = 5;

/// Compact JSON (charming's Display pretty-prints). Serialising plain data cannot fail;
/// an empty object would draw an empty chart rather than panic.
fn option(chart: &Chart) -> String {
    serde_json::to_string(chart).unwrap_or_else(|_| "{}".into())
}

fn base() -> Chart {
    Chart::new()
        .background_color(Color::from("transparent"))
        .animation(false)
}

/// A donut of the top genres' shares (in percent), the rest as "other".
pub fn genre_chart(shares: &[GenreShare]) -> Option<String> {
    if shares.is_empty() {
        return None;
    }
    let data: Vec<(f64, String)> = genre_slices(shares)
        .into_iter()
        .map(|(genre, pct)| (pct, genre))
        .collect();
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
    Some(option(&chart))
}

/// Rank over time: one line per series (rank 1 at the top), a point per sync. The first
/// [`SERIES_SHOWN`] lines are on; the legend chooses which others to show.
pub fn rank_chart(synced_at: &[String], series: &[RankSeries]) -> Option<String> {
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
    Some(option(&chart))
}

/// The colour scale of the listening heatmaps: from none to `most` minutes, below the chart.
fn minutes_scale(most: u32) -> VisualMap {
    VisualMap::new()
        .min(0)
        .max(f64::from(most))
        .orient(Orient::Horizontal)
        .left("center")
        .bottom(0)
        .calculable(false)
        .item_height(120)
        .in_range(VisualMapChannel::new().color(vec![
            Color::from("rgba(29, 185, 84, 0.12)"),
            Color::from("#1db954"),
        ]))
}

/// The calendar's cells: as wide as the box allows (53 to 57 weeks across), this tall.
pub const DAY_CELL_HEIGHT: u32 = 14;
/// A calendar this wide or narrower (a phone's) names its months by their first letter:
/// a week is a few pixels wide there, and "Mar" ran into "Apr".
pub const NARROW_CALENDAR_PX: u32 = 520;
const MONTH_LETTERS: [&str; 12] = ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"];

/// Minutes per day from `from` to `to` (YYYY-MM-DD; a year or a little more, from the
/// first of a month): a calendar of days coloured by minutes, Monday first, the scale
/// below it. ECharts' `baseOption` with a `media` rule for narrow boxes.
pub fn days_chart(days: &[DayMinutes], from: &str, to: &str) -> Option<String> {
    if days.is_empty() {
        return None;
    }
    let most = days.iter().map(|d| d.minutes).max().unwrap_or(1).max(1);
    let data: Vec<DataFrame> = days
        .iter()
        .map(|d| {
            vec![
                DataPoint::from(d.day.clone()),
                DataPoint::from(i64::from(d.minutes)),
            ]
        })
        .collect();
    let chart = base()
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .visual_map(minutes_scale(most))
        .calendar(
            Calendar::new()
                .range(Range::Range((from.to_string(), to.to_string())))
                .top(24)
                .left(34)
                .right(8),
        )
        .series(
            Heatmap::new()
                .name("Minutes")
                .coordinate_system(CoordinateSystem::Calendar)
                .data(data),
        );
    // The cell size goes into the JSON as ECharts reads it, `["auto", 14]`: charming's
    // `CellSize` writes each part tagged with its Rust variant (`{"String": "auto"}`),
    // which ECharts cannot read, so it drew every cell with an empty path. The labels
    // charming has no setters for go in the same way.
    let mut base = serde_json::to_value(&chart).unwrap_or_default();
    let calendar = &mut base["calendar"];
    calendar["cellSize"] = json!(["auto", DAY_CELL_HEIGHT]);
    // Weeks start on Monday, as in the week grid. No year label: the heading says the
    // span, and the rotated "2025-2026" did not fit beside the day names.
    calendar["dayLabel"] = json!({ "firstDay": 1 });
    calendar["yearLabel"] = json!({ "show": false });
    let months =
        |names: serde_json::Value| json!({ "calendar": { "monthLabel": { "nameMap": names } } });
    let option = json!({
        "baseOption": base,
        "media": [
            { "option": months(json!("en")) },
            { "query": { "maxWidth": NARROW_CALENDAR_PX }, "option": months(json!(MONTH_LETTERS)) },
        ],
    });
    Some(option.to_string())
}

/// Minutes by weekday (rows, Monday at the top) and hour (columns).
pub fn week_chart(week: &[Vec<u32>]) -> Option<String> {
    let most = week.iter().flatten().copied().max().unwrap_or(0);
    if most == 0 {
        return None;
    }
    let hours: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    let days: Vec<String> = WEEKDAYS.iter().map(|d| d[..3].to_string()).collect();
    let mut data: Vec<DataFrame> = Vec::with_capacity(7 * 24);
    for (d, row) in week.iter().enumerate() {
        for (h, minutes) in row.iter().enumerate() {
            data.push(vec![
                DataPoint::from(h as i64),
                DataPoint::from(d as i64),
                DataPoint::from(i64::from(*minutes)),
            ]);
        }
    }
    let chart = base()
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .grid(
            Grid::new()
                .left(40)
                .right(8)
                .top(8)
                .bottom(64)
                .contain_label(true),
        )
        .x_axis(Axis::new().type_(AxisType::Category).data(hours))
        .y_axis(
            Axis::new()
                .type_(AxisType::Category)
                .inverse(true)
                .data(days),
        )
        .visual_map(minutes_scale(most))
        .series(Heatmap::new().name("Minutes").data(data));
    Some(option(&chart))
}

// ---------------------------------------------------------------------------------------
// GET /charts/genres?range=&sync=, /charts/history?range=&list=&sync=,
// /charts/artist/{id}?sync=: the signed-in person's charts, as ECharts option JSON.

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/charts/genres", get(genres))
        .route("/charts/history", get(history))
        .route("/charts/artist/{id}", get(artist))
        .route("/charts/listening/days", get(listening_days))
        .route("/charts/listening/week", get(listening_week))
}

type Params = Query<HashMap<String, String>>;

/// A chart request's answer when there is no chart: a status and a sentence.
struct NoChart(StatusCode, &'static str);

impl IntoResponse for NoChart {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CACHE_CONTROL, "no-store")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

/// The option JSON. When the URL named the sync the chart shows, the answer never changes
/// (a new sync is a new URL), so the browser keeps it; otherwise it is not kept.
fn chart(option: String, requested_sync: Option<i64>, shown_sync: Option<i64>) -> Response {
    let cache = if requested_sync.is_some() && requested_sync == shown_sync {
        "private, max-age=604800, immutable"
    } else {
        "no-store"
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache),
        ],
        option,
    )
        .into_response()
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<SessionUser, NoChart> {
    match session::current_user(&state.stores.main, &state.sessions, headers).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(NoChart(
            StatusCode::UNAUTHORIZED,
            "Sign in to see this chart.",
        )),
        Err(e) => {
            tracing::error!(error = %e, "database unavailable");
            Err(NoChart(
                StatusCode::SERVICE_UNAVAILABLE,
                "Personalify cannot reach its database right now.",
            ))
        }
    }
}

fn range_param(params: &HashMap<String, String>) -> Result<TimeRange, NoChart> {
    params
        .get("range")
        .and_then(|r| r.parse().ok())
        .ok_or(NoChart(
            StatusCode::BAD_REQUEST,
            "range must be short_term, medium_term or long_term.",
        ))
}

fn sync_param(params: &HashMap<String, String>) -> Option<i64> {
    params.get("sync").and_then(|s| s.parse().ok())
}

const NOTHING_TO_DRAW: NoChart = NoChart(StatusCode::NOT_FOUND, "There is nothing to chart yet.");
const HISTORY_DOWN: NoChart = NoChart(
    StatusCode::SERVICE_UNAVAILABLE,
    "The sync history is unavailable right now.",
);

async fn genres(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, NoChart> {
    let range = range_param(&params)?;
    let user = signed_in(&state, &headers).await?;
    let payload = crate::server::sync::read::top_payload(&state, &user.spotify_id, range)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "database unavailable");
            NoChart(
                StatusCode::SERVICE_UNAVAILABLE,
                "Personalify cannot reach its database right now.",
            )
        })?
        .map(|(payload, _)| payload)
        .ok_or(NOTHING_TO_DRAW)?;
    let Genres::Available { shares } = &payload.genres else {
        return Err(NOTHING_TO_DRAW);
    };
    let option = genre_chart(shares).ok_or(NOTHING_TO_DRAW)?;
    Ok(chart(option, sync_param(&params), Some(payload.sync_id)))
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, NoChart> {
    let range = range_param(&params)?;
    let list = match params.get("list").map(String::as_str) {
        Some("artists") => RankList::Artists,
        Some("tracks") => RankList::Tracks,
        _ => {
            return Err(NoChart(
                StatusCode::BAD_REQUEST,
                "list must be artists or tracks.",
            ))
        }
    };
    let user = signed_in(&state, &headers).await?;
    let view = crate::server::sync::history::load_view(
        &state.stores,
        state.config.cache_ttl,
        user.user_id,
        &user.spotify_id,
        range,
        i64::from(crate::server::sync::history::DEFAULT_SNAPSHOTS),
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "history chart unavailable");
        HISTORY_DOWN
    })?;
    let series = match list {
        RankList::Artists => &view.history.artists,
        RankList::Tracks => &view.history.tracks,
    };
    let option = rank_chart(&view.history.synced_at, series).ok_or(NOTHING_TO_DRAW)?;
    Ok(chart(option, sync_param(&params), view.sync_id))
}

async fn artist(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, NoChart> {
    if !is_plausible_id(&id) {
        return Err(NOTHING_TO_DRAW);
    }
    let user = signed_in(&state, &headers).await?;
    let syncs = crate::server::sync::history::recent_syncs(
        &state.stores.main,
        user.user_id,
        crate::server::artist::HISTORY_SYNCS,
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "database unavailable");
        NoChart(
            StatusCode::SERVICE_UNAVAILABLE,
            "Personalify cannot reach its database right now.",
        )
    })?;
    let history = crate::server::artist::history(
        &state.stores,
        state.config.cache_ttl,
        &syncs,
        &user.spotify_id,
        &id,
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "artist chart unavailable");
        HISTORY_DOWN
    })?;
    let option = rank_chart(&history.synced_at, &history.series()).ok_or(NOTHING_TO_DRAW)?;
    Ok(chart(option, sync_param(&params), history.sync_id))
}

const PLAYS_DOWN: NoChart = NoChart(
    StatusCode::SERVICE_UNAVAILABLE,
    "Your listening history is unavailable right now.",
);

/// A remote read for a listening chart, within the panels' deadline.
async fn plays_bounded<T>(
    read: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, NoChart> {
    match tokio::time::timeout(crate::server::listening::DEADLINE, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "listening chart: analytics node unavailable");
            Err(PLAYS_DOWN)
        }
        Err(_) => Err(PLAYS_DOWN),
    }
}

async fn listening_days(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, NoChart> {
    use crate::server::listening;
    let user = signed_in(&state, &headers).await?;
    let remote = &state.stores.remote;
    let zone = plays_bounded(listening::zone(remote, &user.spotify_id)).await?;
    let days = plays_bounded(listening::days(remote, &user.spotify_id)).await?;
    let from = listening::calendar_from(zone.today).to_string();
    let days: Vec<DayMinutes> = days.into_iter().filter(|d| d.day >= from).collect();
    let option = days_chart(&days, &from, &zone.today.to_string()).ok_or(NOTHING_TO_DRAW)?;
    Ok(chart(option, None, None))
}

async fn listening_week(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, NoChart> {
    use crate::server::listening;
    let range = range_param(&params)?;
    let user = signed_in(&state, &headers).await?;
    let remote = &state.stores.remote;
    let zone = plays_bounded(listening::zone(remote, &user.spotify_id)).await?;
    let from = listening::from_day(zone.today, range);
    let week = plays_bounded(listening::week(remote, &user.spotify_id, from)).await?;
    let option = week_chart(&week).ok_or(NOTHING_TO_DRAW)?;
    Ok(chart(option, None, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chart::GENRE_SLICES;
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
        let option: Value = serde_json::from_str(&genre_chart(&shares(10)).unwrap()).unwrap();
        let data = option["series"][0]["data"].as_array().unwrap();
        assert_eq!(data.len(), GENRE_SLICES + 1);
        assert_eq!(data[0]["name"], "g0");
        assert_eq!(data[0]["value"], 10.0);
        assert_eq!(data[GENRE_SLICES]["name"], "other");
        assert_eq!(data[GENRE_SLICES]["value"], 20.0);
        assert_eq!(option["series"][0]["type"], "pie");
        assert!(genre_chart(&[]).is_none());
    }

    /// Keys in `value` ECharts would not read: a key starting with a capital is a Rust enum
    /// variant's tag (`{"String": "auto"}`), not an option. The legend's `selected` is keyed
    /// by series names, so it is skipped.
    fn variant_tags(value: &Value, path: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key.starts_with(|c: char| c.is_ascii_uppercase()) {
                        out.push(format!("{path}.{key}"));
                    }
                    if key != "selected" {
                        variant_tags(inner, &format!("{path}.{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    variant_tags(inner, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    fn day(day: &str, minutes: u32) -> DayMinutes {
        DayMinutes {
            day: day.into(),
            minutes,
            plays: 1,
        }
    }

    #[test]
    fn every_chart_option_holds_only_what_echarts_reads() {
        let days = [day("2026-03-01", 30), day("2026-03-02", 4)];
        let mut week = vec![vec![0u32; 24]; 7];
        week[4][21] = 50;
        let series = [RankSeries {
            id: "a".into(),
            name: "Alpha".into(),
            points: vec![Some(2), None],
        }];
        let at = vec!["2026-11-20T10:00:00.000Z".to_string(); 2];
        let options = [
            ("genres", genre_chart(&shares(3))),
            ("history", rank_chart(&at, &series)),
            ("days", days_chart(&days, "2025-12-09", "2026-12-08")),
            ("week", week_chart(&week)),
        ];
        for (name, option) in options {
            let option: Value = serde_json::from_str(&option.expect(name)).unwrap();
            let mut tags = Vec::new();
            variant_tags(&option, name, &mut tags);
            assert!(tags.is_empty(), "{tags:?} in {option}");
        }
    }

    #[test]
    fn the_calendar_sizes_its_cells_as_echarts_reads_them() {
        let days = [day("2026-03-01", 30), day("2026-12-08", 4)];
        let option: Value =
            serde_json::from_str(&days_chart(&days, "2025-12-09", "2026-12-08").unwrap()).unwrap();
        let base = &option["baseOption"];
        let calendar = &base["calendar"];
        assert_eq!(calendar["cellSize"], json!(["auto", DAY_CELL_HEIGHT]));
        assert_eq!(calendar["range"], json!(["2025-12-09", "2026-12-08"]));
        assert_eq!(calendar["dayLabel"]["firstDay"], 1, "Monday first");
        assert_eq!(base["series"][0]["coordinateSystem"], "calendar");
        assert_eq!(base["series"][0]["data"][0], json!(["2026-03-01", 30]));
        assert_eq!(base["visualMap"][0]["max"], 30.0);
        let narrow = &option["media"][1];
        assert_eq!(narrow["query"]["maxWidth"], NARROW_CALENDAR_PX);
        assert_eq!(
            narrow["option"]["calendar"]["monthLabel"]["nameMap"][11],
            "D"
        );
        assert!(days_chart(&[], "2025-12-09", "2026-12-08").is_none());
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
        let option: Value = serde_json::from_str(&rank_chart(&at, &series).unwrap()).unwrap();
        assert_eq!(option["xAxis"]["data"][0], "11-20 10:00");
        assert_eq!(option["yAxis"]["inverse"], true);
        assert_eq!(option["yAxis"]["max"], 7);
        assert_eq!(option["series"][1]["data"], serde_json::json!([null, 7]));
        assert_eq!(option["series"][1]["name"], "</script><b>");
        assert_eq!(option["legend"]["selected"]["Alpha"], true);
        assert!(rank_chart(&[], &series).is_none());
    }
}
