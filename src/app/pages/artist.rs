use crate::api::artist::get_artist;
use crate::api::ApiError;
use crate::app::components::chart::Chart;
use crate::app::components::cover::Cover;
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use crate::domain::artist::{ArtistHistory, ArtistPage, ArtistPlays, ArtistTrack, Listeners};
use crate::domain::chart::{artist_chart_url, rank_summary};
use crate::domain::listening::duration_label;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use leptos_router::{lazy_route, LazyRoute};

/// `/artist/{id}`, loaded in its own WASM chunk (`cargo leptos --split`).
pub struct ArtistRoute;

#[lazy_route]
impl LazyRoute for ArtistRoute {
    fn data() -> Self {
        ArtistRoute
    }

    fn view(this: Self) -> AnyView {
        let ArtistRoute = this;
        view! { <Artist/> }.into_any()
    }
}

/// One artist as the signed-in person knows them (`/artist/{id}`): where they rank in
/// each range, how that moved over the recent syncs, the person's top tracks by them,
/// and what this server knows across people. Artists outside the person's lists are a 404.
#[component]
pub fn Artist() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let artist = Resource::new(move || id.get(), get_artist);
    view! {
        <TopBar/>
        <main class="page">
            <Suspense fallback=|| view! { <p aria-busy="true">"Loading the artist…"</p> }>
                {move || Suspend::new(async move {
                    match artist.await {
                        Ok(Some(page)) => view! { <ArtistBody page/> }.into_any(),
                        Ok(None) => view! {
                            <Title text="Sign in"/>
                            <SignInPrompt why="Sign in to see the artists you listen to."/>
                        }.into_any(),
                        Err(ApiError::NotFound(message)) => view! { <ArtistNotFound message/> }.into_any(),
                        Err(err) => view! {
                            <Title text="Artist"/>
                            <ErrorNotice message=err.to_string()/>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn ArtistNotFound(message: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Artist not found"/>
        <section class="page--narrow" data-testid="artist-not-found">
            <h1>"Artist not found"</h1>
            <p>{message}" Artists show here once they are in one of your lists."</p>
            <p><a class="button button--primary" href="/dashboard">"Back to your dashboard"</a></p>
        </section>
    }
}

fn number(n: u64) -> String {
    // 1234567 → "1,234,567"
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[component]
fn ArtistBody(page: ArtistPage) -> impl IntoView {
    let genres = match &page.genres {
        Some(g) if !g.is_empty() => g.join(", "),
        Some(_) => "none listed".into(),
        None => "not provided by Spotify".into(),
    };
    let name = page.name.clone();
    view! {
        <Title text=page.name.clone()/>
        <section class="artist-head" aria-labelledby="artist-name">
            <Cover url=page.image_url.clone() size=120/>
            <div class="artist-head__text">
                <p class="muted artist-head__kicker">"Artist"</p>
                <h1 id="artist-name" data-testid="artist-name">{page.name.clone()}</h1>
                <p class="muted" data-testid="artist-genres">{genres}</p>
            </div>
            <a class="button button--secondary artist-head__back" href="/dashboard">"Back to the dashboard"</a>
        </section>

        <dl class="cards" data-testid="artist-ranks">
            {page.ranks.iter().map(|r| view! {
                <div class="card">
                    <dt>{format!("Your rank, {}", r.range.label())}</dt>
                    <dd>{r.rank.map(|n| format!("#{n}")).unwrap_or_else(|| "not in your top list".into())}</dd>
                </div>
            }).collect_view()}
            {page.popularity.map(|p| view! {
                <div class="card"><dt>"Spotify popularity"</dt><dd>{format!("{p} / 100")}</dd></div>
            })}
            {page.followers.map(|f| view! {
                <div class="card"><dt>"Followers on Spotify"</dt><dd>{number(f)}</dd></div>
            })}
        </dl>

        <div class="panels panels--two">
            <section class="panel" aria-labelledby="artist-history-title">
                <h2 id="artist-history-title">"Your rank over time"</h2>
                <HistoryPanel artist_id=page.id.clone() history=page.history.clone()/>
            </section>
            <section class="panel" aria-labelledby="artist-tracks-title">
                <h2 id="artist-tracks-title">{format!("Your top tracks by {name}")}</h2>
                <TrackList tracks=page.tracks.clone()/>
            </section>
            <section class="panel" aria-labelledby="artist-server-title" data-testid="artist-server">
                <h2 id="artist-server-title">"On this server"</h2>
                <ServerFigures views=page.views listeners=page.listeners/>
            </section>
            <section class="panel" aria-labelledby="artist-plays-title" data-testid="artist-plays">
                <h2 id="artist-plays-title">"Your plays"</h2>
                <PlaysPanel name=name.clone() plays=page.plays.clone() people=page.listeners.total/>
            </section>
        </div>
    }
}

/// The person's plays of the artist per month, from the analytics node, and how many
/// people here have played them.
#[component]
fn PlaysPanel(name: String, plays: Option<ArtistPlays>, people: i64) -> impl IntoView {
    let Some(plays) = plays else {
        return view! {
            <p class="notice" data-testid="artist-plays-unavailable">
                "Your plays are unavailable right now: Personalify's analytics node is not answering. Everything else on this page is up to date."
            </p>
        }
        .into_any();
    };
    let others = match (plays.listeners, people) {
        (0, _) => "Nobody on this server has played them yet.".to_string(),
        (_, 1) => "You are the only person on this server.".to_string(),
        (1, total) => format!("1 of the {total} people on this server has played them."),
        (n, total) => format!("{n} of the {total} people on this server have played them."),
    };
    if plays.plays == 0 {
        return view! {
            <p class="muted">{format!("No plays of {name} yet. Personalify reads your recently played every few minutes.")}</p>
            <p data-testid="artist-instance-listeners">{others}</p>
        }
        .into_any();
    }
    let summary = format!(
        "You played {name} {} time{} ({}) since {}.",
        plays.plays,
        if plays.plays == 1 { "" } else { "s" },
        duration_label(u64::from(plays.minutes)),
        plays.first_day.clone().unwrap_or_default()
    );
    view! {
        <p data-testid="artist-plays-summary">{summary}</p>
        <div class="table-scroll" tabindex="0" role="region" aria-label="Your plays per month">
            <table class="ranks" data-testid="artist-plays-table">
                <thead><tr><th scope="col">"Month"</th><th scope="col">"Plays"</th><th scope="col">"Listened"</th></tr></thead>
                <tbody>
                    {plays.months.into_iter().rev().take(12).map(|m| view! {
                        <tr><th scope="row">{m.month}</th><td>{m.plays}</td><td>{duration_label(u64::from(m.minutes))}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <p data-testid="artist-instance-listeners">{others}</p>
    }
    .into_any()
}

#[component]
fn HistoryPanel(artist_id: String, history: Option<ArtistHistory>) -> impl IntoView {
    let Some(history) = history else {
        return view! {
            <p class="notice" data-testid="artist-history-unavailable">
                "The sync history is unavailable right now (MongoDB cannot be reached). Your current ranks above are up to date."
            </p>
        }
        .into_any();
    };
    if history.synced_at.is_empty() {
        return view! { <p class="muted">"No syncs recorded yet."</p> }.into_any();
    }
    let synced_at = history.synced_at.clone();
    let series = history.series();
    let chart = history
        .sync_id
        .filter(|_| !series.is_empty())
        .map(|sync_id| {
            view! {
                <Chart
                    src=artist_chart_url(&artist_id, sync_id)
                    label=rank_summary("this artist's", synced_at.len(), &series)
                    class="chart--short"
                    testid="artist-rank-chart"
                />
            }
        });
    view! {
        {chart}
        <div class="table-scroll" tabindex="0" role="region" aria-label="Your rank over time, as a table">
            <table class="ranks" data-testid="artist-rank-table">
                <caption>"As a table (UTC; – means not in that list)"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Range"</th>
                        {synced_at.iter().map(|at| view! {
                            <th scope="col"><time datetime=at.clone()>{crate::domain::history::time_label(at)}</time></th>
                        }).collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {history.ranges.into_iter().map(|(range, points)| view! {
                        <tr>
                            <th scope="row">{range.label()}</th>
                            {points.into_iter().map(|p| view! {
                                <td>{p.map(|r| format!("#{r}")).unwrap_or_else(|| "–".into())}</td>
                            }).collect_view()}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn TrackList(tracks: Vec<ArtistTrack>) -> impl IntoView {
    if tracks.is_empty() {
        return view! { <p class="muted">"None of their tracks is in your top tracks."</p> }
            .into_any();
    }
    view! {
        <ol class="ranked ranked--plain" data-testid="artist-tracks">
            {tracks.into_iter().map(|t| {
                let ranks = t.ranks.iter()
                    .map(|(range, rank)| format!("#{rank} in {}", range.label()))
                    .collect::<Vec<_>>()
                    .join(" · ");
                let meta = match &t.album {
                    Some(album) => format!("{album} · {ranks}"),
                    None => ranks,
                };
                view! {
                    <li class="ranked__item">
                        <Cover url=t.image_url.clone()/>
                        <span class="ranked__text">
                            <span class="ranked__title">{t.name}</span>
                            <span class="ranked__meta">{meta}</span>
                        </span>
                    </li>
                }
            }).collect_view()}
        </ol>
    }
    .into_any()
}

#[component]
fn ServerFigures(views: Option<i64>, listeners: Listeners) -> impl IntoView {
    let people = if listeners.total == 1 {
        "You are the only person on this server so far.".to_string()
    } else {
        format!(
            "{} of the {} people on this server have them in a top-artists list.",
            listeners.with_artist, listeners.total
        )
    };
    view! {
        <p data-testid="artist-listeners">{people}</p>
        {match views {
            Some(n) => view! {
                <p data-testid="artist-views">
                    {format!("This page has been opened {n} {} on this server.", if n == 1 { "time" } else { "times" })}
                </p>
            }.into_any(),
            None => view! {
                <p class="muted" data-testid="artist-views-unavailable">"The view counter is unavailable right now (Redis cannot be reached)."</p>
            }.into_any(),
        }}
    }
}
