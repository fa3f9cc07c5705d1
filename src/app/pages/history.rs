use crate::api::history::get_history;
use crate::app::components::chart::Chart;
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::keep_while_loading::KeepWhileLoading;
use crate::app::components::range_switch::{range_from_url, RangeSwitch};
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use crate::app::pages::dashboard::BadRange;
use crate::domain::chart::{rank_chart_url, rank_summary, RankList};
use crate::domain::history::{time_label, Change, HistoryView, Movement, RankSeries};
use crate::domain::TimeRange;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

/// `/history`, loaded in its own WASM chunk (`cargo leptos --split`): most visits never
/// open it, so the dashboard does not pay for its code.
pub struct HistoryRoute;

#[lazy_route]
impl LazyRoute for HistoryRoute {
    fn data() -> Self {
        HistoryRoute
    }

    fn view(this: Self) -> AnyView {
        let HistoryRoute = this;
        view! { <History/> }.into_any()
    }
}

/// How the top lists moved: what entered and left since the previous sync, and the rank of
/// today's top 10 across the recent syncs (a table: readable without JavaScript and by
/// screen readers).
#[component]
pub fn History() -> impl IntoView {
    let range = range_from_url();
    let history = Resource::new(
        move || range.get(),
        |range| async move {
            match range {
                Ok(range) => get_history(range, Some(10))
                    .await
                    .map(|view| Some((range, view))),
                Err(_) => Ok(None),
            }
        },
    );
    view! {
        <Title text="History"/>
        <TopBar/>
        <main class="page">
            <div class="welcome__row">
                <h1>"How your top lists moved"</h1>
                <a class="button button--secondary" href=move || format!("/dashboard?range={}", range.get().map(|r| r.as_str()).unwrap_or("short_term"))>
                    "Back to the dashboard"
                </a>
            </div>
            <div class="toolbar"><RangeSwitch range/></div>
            <KeepWhileLoading loading="Loading the history…">
                {move || Suspend::new(async move {
                    match history.await {
                        Ok(Some((range, Some(view)))) => view! { <HistoryBody range view/> }.into_any(),
                        Ok(Some((_, None))) => view! {
                            <SignInPrompt heading_level=2/>
                        }.into_any(),
                        Ok(None) => view! { <BadRange/> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                    }
                })}
            </KeepWhileLoading>
        </main>
    }
}

fn names(changes: &[Change], wanted: Movement) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.movement() == wanted)
        .map(|c| c.name.clone())
        .collect()
}

#[component]
fn HistoryBody(range: TimeRange, view: HistoryView) -> impl IntoView {
    let changes = view.changes;
    let history = view.history;
    let chart = |list: RankList, what: &'static str, series: &[RankSeries]| {
        view.sync_id
            .filter(|_| !series.is_empty())
            .map(|sync_id| ChartBox {
                src: rank_chart_url(range, list, sync_id),
                label: rank_summary(what, history.synced_at.len(), series),
            })
    };
    let artists_chart = chart(RankList::Artists, "artist", &history.artists);
    let tracks_chart = chart(RankList::Tracks, "track", &history.tracks);
    let since_last = if changes.first_sync {
        view! {
            <p class="muted" data-testid="first-sync">
                "There is only one sync so far: movement shows from the next one on (syncs run daily, or use Sync now)."
            </p>
        }
        .into_any()
    } else {
        let lists = [
            (
                "Artists that entered",
                names(&changes.artists, Movement::New),
            ),
            ("Artists that left", names(&changes.artists, Movement::Left)),
            ("Tracks that entered", names(&changes.tracks, Movement::New)),
            ("Tracks that left", names(&changes.tracks, Movement::Left)),
        ];
        view! {
            <div class="cards" data-testid="entered-left">
                {lists.into_iter().map(|(title, items)| view! {
                    <div class="card">
                        <h3 class="card__title">{title}</h3>
                        {if items.is_empty() {
                            view! { <p class="muted">"None"</p> }.into_any()
                        } else {
                            view! { <ul class="plain">{items.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul> }.into_any()
                        }}
                    </div>
                }).collect_view()}
            </div>
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="since-title">
            <h2 id="since-title">"Since the previous sync"</h2>
            {since_last}
        </section>
        <RankTable title="Top artists: rank over time" chart=artists_chart testid="artists-rank-chart" synced_at=history.synced_at.clone() series=history.artists/>
        <RankTable title="Top tracks: rank over time" chart=tracks_chart testid="tracks-rank-chart" synced_at=history.synced_at series=history.tracks/>
    }
}

/// A chart box's URL and accessible name.
struct ChartBox {
    src: String,
    label: String,
}

#[component]
fn RankTable(
    title: &'static str,
    chart: Option<ChartBox>,
    testid: &'static str,
    synced_at: Vec<String>,
    series: Vec<RankSeries>,
) -> impl IntoView {
    view! {
        <section class="panel history-panel">
            <h2 class="history-panel__title">{title}</h2>
            {chart.map(|chart| view! {
                <p class="muted">"Rank 1 is at the top. Pick artists or tracks in the legend to compare them."</p>
                <Chart src=chart.src label=chart.label class="chart--tall" testid/>
            })}
            <div class="table-scroll" tabindex="0" role="region" aria-label=title>
                <table class="ranks" data-testid="rank-table">
                    <caption>"As a table (UTC; – means not in the list)"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            {synced_at.iter().map(|at| view! {
                                <th scope="col"><time datetime=at.clone()>{time_label(at)}</time></th>
                            }).collect_view()}
                        </tr>
                    </thead>
                    <tbody>
                        {series.into_iter().map(|s| view! {
                            <tr>
                                <th scope="row">{s.name}</th>
                                {s.points.into_iter().map(|p| view! {
                                    <td>{p.map(|r| r.to_string()).unwrap_or_else(|| "–".into())}</td>
                                }).collect_view()}
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}
