use crate::api::listening::get_listening;
use crate::api::trending::{get_instance, get_trending};
use crate::app::components::chart::Chart;
use crate::app::components::keep_while_loading::KeepWhileLoading;
use crate::app::components::range_switch::{range_from_url, RangeSwitch};
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use crate::app::pages::dashboard::BadRange;
use crate::domain::listening::{
    date_label, duration_label, longest_run, months, week_chart_url, ByMinutes, ListeningView,
    Totals, DAYS_CHART_URL, WEEKDAYS,
};
use crate::domain::trending::{thousands, InstanceTotals, Trend, TrendingView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

/// `/listening`, in its own WASM chunk (`cargo leptos --split`).
pub struct ListeningRoute;

#[lazy_route]
impl LazyRoute for ListeningRoute {
    fn data() -> Self {
        ListeningRoute
    }

    fn view(this: Self) -> AnyView {
        let ListeningRoute = this;
        view! { <Listening/> }.into_any()
    }
}

/// What the person's plays say: totals and streaks, minutes per day over the last year,
/// when in the week they listen, and their top artists and tracks by minutes beside
/// Spotify's own lists. Each chart has a table beside it.
#[component]
pub fn Listening() -> impl IntoView {
    let range = range_from_url();
    let data = Resource::new(
        move || range.get(),
        |range| async move {
            match range {
                Ok(range) => get_listening(range).await.map(Some),
                Err(_) => Ok(None),
            }
        },
    );
    view! {
        <Title text="Listening"/>
        <TopBar/>
        <main class="page">
            <div class="welcome__row">
                <h1>"Your listening"</h1>
                <a class="button button--secondary" href=move || format!("/dashboard?range={}", range.get().map(|r| r.as_str()).unwrap_or("short_term"))>
                    "Back to the dashboard"
                </a>
            </div>
            <p class="muted">
                "From your plays: Personalify reads your recently played every few minutes and keeps every play on its analytics node. "
                <a href="/distributed">"How these are queried"</a>
                " · "
                <a href="/import">"Import your full history"</a>
            </p>
            <div class="toolbar"><RangeSwitch range/></div>
            <KeepWhileLoading loading="Loading your plays…">
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(Some(view))) => view! { <ListeningBody view/> }.into_any(),
                        Ok(Some(None)) => view! { <SignInPrompt heading_level=2/> }.into_any(),
                        Ok(None) => view! { <BadRange/> }.into_any(),
                        Err(err) => view! {
                            <p class="notice" role="status" data-testid="listening-unavailable">{err.to_string()}</p>
                        }.into_any(),
                    }
                })}
            </KeepWhileLoading>
            <Trending/>
        </main>
    }
}

/// Trending on this instance: its own request, so Redis or a node being down leaves the
/// rest of the page as it is and says so here.
#[component]
fn Trending() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_trending());
    let totals = Resource::new(|| (), |_| get_instance());
    view! {
        <section class="panel" aria-labelledby="trending-title" data-testid="trending">
            <h2 id="trending-title">"Trending on this instance"</h2>
            <Suspense fallback=|| view! { <p aria-busy="true">"Counting this instance…"</p> }>
                {move || Suspend::new(async move {
                    match totals.await {
                        Ok(Some(totals)) => view! { <InstanceLine totals/> }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(err) => view! {
                            <p class="notice" role="status" data-testid="instance-unavailable">{err.to_string()}</p>
                        }.into_any(),
                    }
                })}
            </Suspense>
            <Suspense fallback=|| view! { <p aria-busy="true">"Counting…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(view)) => view! { <TrendingBody view/> }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(err) => view! {
                            <p class="notice" role="status" data-testid="trending-unavailable">{err.to_string()}</p>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// "12 listeners · 34,567 plays · 1,234 hours listened here".
#[component]
fn InstanceLine(totals: InstanceTotals) -> impl IntoView {
    let hours = totals.minutes / 60;
    view! {
        <p data-testid="instance-totals">
            <strong>{format!(
                "{} {} · {} {} · {} {} listened",
                thousands(totals.listeners),
                if totals.listeners == 1 { "listener" } else { "listeners" },
                thousands(totals.plays),
                if totals.plays == 1 { "play" } else { "plays" },
                thousands(hours),
                if hours == 1 { "hour" } else { "hours" },
            )}</strong>
            <span class="muted">" on this instance, all time."</span>
        </p>
    }
}

#[component]
fn TrendingBody(view: TrendingView) -> impl IntoView {
    view! {
        <p class="muted">
            {format!("What everyone here played: today ({} UTC) and the last 7 days.", view.day)}
        </p>
        <div class="panels panels--two">
            <TrendLists title="Today" testid="trending-today" trend=view.today/>
            <TrendLists title="Last 7 days" testid="trending-week" trend=view.week/>
        </div>
    }
}

#[component]
fn TrendLists(title: &'static str, testid: &'static str, trend: Trend) -> impl IntoView {
    if trend.artists.is_empty() {
        return view! {
            <div data-testid=testid>
                <h3 class="card__title">{title}</h3>
                <p class="muted">"No plays yet."</p>
            </div>
        }
        .into_any();
    }
    view! {
        <div data-testid=testid>
            <h3 class="card__title">{title}</h3>
            <div class="table-scroll" tabindex="0" role="region" aria-label=format!("Trending artists, {title}")>
                <table class="ranks">
                    <caption>"Artists"</caption>
                    <thead><tr><th scope="col" class="name">"Artist"</th><th scope="col">"Plays"</th></tr></thead>
                    <tbody>
                        {trend.artists.into_iter().map(|(artist, n)| view! {
                            <tr><td class="name">{artist}</td><td>{n}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            <div class="table-scroll" tabindex="0" role="region" aria-label=format!("Trending tracks, {title}")>
                <table class="ranks">
                    <caption>"Tracks"</caption>
                    <thead><tr><th scope="col" class="name">"Track"</th><th scope="col" class="name">"Artist"</th><th scope="col">"Plays"</th></tr></thead>
                    <tbody>
                        {trend.tracks.into_iter().map(|(track, artist, n)| view! {
                            <tr><td class="name">{track}</td><td class="name">{artist}</td><td>{n}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn ListeningBody(view: ListeningView) -> impl IntoView {
    view! {
        <ZoneForm time_zone=view.time_zone.clone() set=view.zone_set/>
        <ListeningPanels view/>
    }
}

/// The time zone days and hours are counted in, and a form to change it (a plain form;
/// `public/enhance.js` saves the browser's zone while none was chosen).
#[component]
fn ZoneForm(time_zone: String, set: bool) -> impl IntoView {
    view! {
        <form id="zone-form" class="zone-form" method="post" action="/listening/time-zone"
            data-zone-set=if set { "true" } else { "false" } data-testid="zone-form">
            <label for="time-zone">"Days and hours are in the time zone"</label>
            <input id="time-zone" name="time_zone" type="text" value=time_zone.clone() required
                maxlength="64" autocomplete="off" spellcheck="false" data-testid="time-zone"
                aria-describedby="zone-message"/>
            <button type="submit" class="button button--secondary">"Change"</button>
            <span id="zone-message" class="muted" role="status">
                {if set { String::new() } else { "(not chosen yet: UTC)".to_string() }}
            </span>
        </form>
    }
}

#[component]
fn ListeningPanels(view: ListeningView) -> impl IntoView {
    if view.totals.plays == 0 {
        return view! {
            <section class="panel" data-testid="no-plays">
                <h2>"No plays yet"</h2>
                <p>
                    "Personalify reads your recently played every few minutes, so your plays appear here soon after you listen. "
                    "Spotify keeps only your last 50 plays; for everything before, "
                    <a href="/import">"import your streaming history"</a> "."
                </p>
            </section>
        }
        .into_any();
    }
    let range = view.range;
    let range_label = range.label();
    let week_label = format!(
        "Minutes listened by weekday and hour over the last {range_label}; the busiest hour is {}",
        busiest(&view.week)
    );
    // Both figures are of the days the calendar shows (the cards above are all time).
    let days_label = format!(
        "Minutes listened per day since {}: in that time, {} with plays and a longest run of {} in a row",
        date_label(&view.days_from),
        days(u32::try_from(view.days.len()).unwrap_or(u32::MAX)),
        days(longest_run(&view.days))
    );
    view! {
        <TotalsCards totals=view.totals.clone()/>
        <section class="panel history-panel" aria-labelledby="days-title">
            <h2 id="days-title">"Minutes per day, last year"</h2>
            <Chart src=DAYS_CHART_URL.to_string() label=days_label class="chart--short" testid="days-chart"/>
            <details>
                <summary>"As a table: minutes per month"</summary>
                <div class="table-scroll" tabindex="0" role="region" aria-label="Minutes per month">
                    <table class="ranks" data-testid="months-table">
                        <thead><tr><th scope="col">"Month"</th><th scope="col">"Listened"</th></tr></thead>
                        <tbody>
                            {months(&view.days).into_iter().map(|m| view! {
                                <tr><th scope="row">{m.month}</th><td>{duration_label(u64::from(m.minutes))}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </details>
        </section>
        <section class="panel history-panel" aria-labelledby="week-title">
            <h2 id="week-title">{format!("When you listen: the last {range_label}")}</h2>
            <Chart src=week_chart_url(range) label=week_label class="chart--short" testid="week-chart"/>
            <details>
                <summary>"As a table: minutes by weekday and hour"</summary>
                <div class="table-scroll" tabindex="0" role="region" aria-label="Minutes by weekday and hour">
                    <table class="ranks" data-testid="week-table">
                        <thead>
                            <tr>
                                <th scope="col">"Day"</th>
                                {(0..24).map(|h| view! { <th scope="col">{format!("{h:02}")}</th> }).collect_view()}
                            </tr>
                        </thead>
                        <tbody>
                            {view.week.iter().zip(WEEKDAYS).map(|(row, day)| view! {
                                <tr>
                                    <th scope="row">{day}</th>
                                    {row.iter().map(|m| view! { <td>{*m}</td> }).collect_view()}
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </details>
        </section>
        <div class="panels panels--two">
            <TopByMinutes
                title="Top artists by minutes"
                testid="artists-by-minutes"
                rows=view.top_artists
                spotify_title="Spotify's top artists"
                spotify=view.spotify_artists
            />
            <TopByMinutes
                title="Top tracks by minutes"
                testid="tracks-by-minutes"
                rows=view.top_tracks
                spotify_title="Spotify's top tracks"
                spotify=view.spotify_tracks
            />
        </div>
    }
    .into_any()
}

/// "Friday 21:00" for the cell with the most minutes.
fn busiest(week: &[Vec<u32>]) -> String {
    let mut best = (0u32, 0usize, 0usize);
    for (d, row) in week.iter().enumerate() {
        for (h, m) in row.iter().enumerate() {
            if *m > best.0 {
                best = (*m, d, h);
            }
        }
    }
    format!("{} {:02}:00", WEEKDAYS.get(best.1).unwrap_or(&""), best.2)
}

#[component]
fn TotalsCards(totals: Totals) -> impl IntoView {
    let since = totals.first_day.clone().unwrap_or_else(|| "—".into());
    view! {
        <dl class="cards" data-testid="listening-totals">
            <div class="card"><dt>"Plays"</dt><dd>{totals.plays}</dd></div>
            <div class="card"><dt>"Listened"</dt><dd>{duration_label(totals.minutes)}</dd></div>
            <div class="card"><dt>"Tracks"</dt><dd>{totals.tracks}</dd></div>
            <div class="card"><dt>"Artists"</dt><dd>{totals.artists}</dd></div>
            <div class="card"><dt>"Days with plays"</dt><dd>{totals.days_listened}</dd></div>
            <div class="card"><dt>"Current streak"</dt><dd>{days(totals.current_streak)}</dd></div>
            <div class="card"><dt>"Longest streak"</dt><dd>{days(totals.longest_streak)}</dd></div>
            <div class="card"><dt>"First play"</dt><dd><time datetime=since.clone()>{since.clone()}</time></dd></div>
        </dl>
    }
}

fn days(n: u32) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

#[component]
fn TopByMinutes(
    title: &'static str,
    testid: &'static str,
    rows: Vec<ByMinutes>,
    spotify_title: &'static str,
    spotify: Vec<String>,
) -> impl IntoView {
    view! {
        <section class="panel" data-testid=testid>
            <h2>{title}</h2>
            <div class="side-by-side">
                <ol class="plain by-minutes">
                    {rows.into_iter().map(|row| {
                        let name = match row.artist_id.clone() {
                            Some(id) if row.artist.is_none() => view! { <a href=format!("/artist/{id}")>{row.name.clone()}</a> }.into_any(),
                            _ => view! { <span>{row.name.clone()}</span> }.into_any(),
                        };
                        let by = row.artist.clone().map(|artist| match row.artist_id.clone() {
                            Some(id) => view! { " · " <a class="muted" href=format!("/artist/{id}")>{artist}</a> }.into_any(),
                            None => view! { <span class="muted">" · " {artist}</span> }.into_any(),
                        });
                        view! {
                            <li>
                                {name}{by}
                                <span class="muted by-minutes__figure">{format!(" — {} ({} plays)", duration_label(u64::from(row.minutes)), row.plays)}</span>
                            </li>
                        }
                    }).collect_view()}
                </ol>
                <div>
                    <h3 class="card__title">{spotify_title}</h3>
                    {if spotify.is_empty() {
                        view! { <p class="muted">"Not synced yet."</p> }.into_any()
                    } else {
                        view! { <ol class="plain">{spotify.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ol> }.into_any()
                    }}
                </div>
            </div>
        </section>
    }
}
