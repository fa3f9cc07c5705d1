use crate::api::top::{get_sync_status, get_top, start_sync, wait_in_words, TopView};
use crate::api::viewer::{get_viewer, Viewer};
use crate::api::ApiError;
use crate::app::components::chart::Chart;
use crate::app::components::cover::Cover;
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::keep_while_loading::KeepWhileLoading;
use crate::app::components::range_switch::{range_from_url, RangeSwitch};
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use crate::domain::chart::{genre_chart_url, genre_summary, percent};
use crate::domain::dashboard::{ArtistRow, DashboardLists, TrackRow};
use crate::domain::history::Movement;
use crate::domain::{Genres, SyncProgress, SyncStatus, TimeRange};
use leptos::prelude::*;
use leptos_meta::Title;

/// The signed-in home: the top lists for the range in the URL (`?range=`), a range switch
/// that is a plain link (works without JavaScript, keeps the back button honest), and
/// "Sync now" with live progress once hydrated.
#[component]
pub fn Dashboard() -> impl IntoView {
    let range = range_from_url();
    // Bumped when a sync finishes, to reload the lists.
    let reloads = RwSignal::new(0u32);
    // The page's resources are created here, once per page. Created inside a `Suspend`
    // body, they were created again whenever the server walked the tree again, and every
    // copy was serialized into the page: the same lists two or three times.
    let viewer = Resource::new(|| (), |_| get_viewer());
    let top = Resource::new(
        move || (range.get(), reloads.get()),
        move |(range, _)| async move {
            // Nobody signed in, or a range that does not exist: nothing to ask for.
            match (viewer.await, range) {
                (Ok(Some(_)), Ok(range)) => get_top(range.as_str().to_string()).await.map(Some),
                (Err(err), _) => Err(err),
                _ => Ok(None),
            }
        },
    );
    view! {
        <Title text="Your dashboard"/>
        <TopBar/>
        <main class="page">
            <Suspense fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match viewer.await {
                        Ok(Some(viewer)) => view! { <SignedIn viewer range reloads top/> }.into_any(),
                        Ok(None) => view! {
                            <SignInPrompt why="Sign in to see your top artists, tracks and genres."/>
                        }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn SignedIn(
    viewer: Viewer,
    range: Memo<Result<TimeRange, String>>,
    reloads: RwSignal<u32>,
    top: Resource<Result<Option<TopView>, ApiError>>,
) -> impl IntoView {
    let progress = RwSignal::new(None::<SyncProgress>);
    // Why "Sync now" was refused (too soon, Spotify budget spent), in words.
    let refused = RwSignal::new(None::<String>);
    // When "Sync now" is allowed again (Unix seconds), and the browser's clock: `None` on
    // the server and until hydrated, so the server's HTML (kept per sync) never carries a
    // countdown that goes stale.
    let next_sync_at = RwSignal::new(None::<i64>);
    let cooldown_secs = RwSignal::new(0u32);
    let clock = RwSignal::new(None::<i64>);
    let sync_now = Action::new(|_: &()| start_sync());
    Effect::new(move |_| match sync_now.value().get() {
        Some(Ok(p)) => {
            refused.set(None);
            progress.set(Some(p));
            if let Some(now) = clock.get_untracked() {
                let cooldown = i64::from(cooldown_secs.get_untracked());
                next_sync_at.set((cooldown > 0).then_some(now + cooldown));
            }
        }
        Some(Err(err)) => refused.set(Some(err.to_string())),
        None => {}
    });
    tick_clock(clock);
    let wait = move || {
        let (now, next) = (clock.get()?, next_sync_at.get()?);
        u64::try_from(next - now).ok().filter(|&s| s > 0)
    };
    // The sync whose lists are on screen: a sync that ends having written exactly those
    // (the first visit's, often finished by the time the page renders) needs no reload.
    // `None` once the page is gone.
    let shown_sync = move || {
        top.try_with_untracked(|t| match t {
            Some(Ok(Some(view))) => view.lists.as_ref().map(|l| l.sync_id),
            _ => None,
        })
    };
    watch_progress(progress, reloads, shown_sync);

    let relogin_href = if viewer.demo_mode {
        "/auth/demo"
    } else {
        "/auth/login"
    };
    view! {
        <section class="welcome" aria-labelledby="welcome-title">
            <div class="welcome__row">
                <h1 id="welcome-title">
                    "Hi, " <span data-testid="viewer-name">{viewer.display_name.clone()}</span>
                </h1>
                <form method="post" action="/auth/logout">
                    <button type="submit" class="button button--secondary">"Sign out"</button>
                </form>
            </div>
            {viewer.demo_mode.then(|| view! {
                <p class="notice" data-testid="demo-mode">
                    <strong>"Demo mode. "</strong>
                    "You are signed in as a demo listener; the data comes from Personalify's built-in Spotify simulator."
                </p>
            })}
            {viewer.needs_relogin.then(|| view! {
                <p class="notice notice--error" role="alert" data-testid="needs-relogin">
                    <strong>"Spotify needs you to sign in again. "</strong>
                    "Your Spotify connection expired or was revoked, so new syncs are paused. "
                    <a rel="external" href=relogin_href>"Sign in again"</a>
                </p>
            })}
        </section>

        <div class="toolbar">
            <RangeSwitch range/>
            <a class="toolbar__link" href=move || format!("/history?range={}", range.get().map(|r| r.as_str()).unwrap_or("short_term"))>
                "History"
            </a>
            <a class="toolbar__link" href=move || format!("/listening?range={}", range.get().map(|r| r.as_str()).unwrap_or("short_term"))>
                "Listening"
            </a>
            <a class="toolbar__link" href="/settings" data-testid="your-data">"Your data"</a>
            <div class="sync">
                <button
                    type="button"
                    class="button button--primary"
                    data-testid="sync-now"
                    disabled=move || viewer.needs_relogin || running(progress.get().as_ref()) || wait().is_some()
                    on:click=move |_| { sync_now.dispatch(()); }
                >
                    {move || match (running(progress.get().as_ref()), wait()) {
                        (true, _) => "Syncing…".to_string(),
                        (false, Some(secs)) => format!("Sync again in {}", wait_in_words(secs)),
                        (false, None) => "Sync now".to_string(),
                    }}
                </button>
                <SyncState progress refused/>
            </div>
        </div>

        <KeepWhileLoading loading="Loading your lists…">
            {move || Suspend::new(async move {
                match top.await {
                    Ok(Some(view)) => {
                        if progress.get_untracked().is_none() {
                            if let Some(sync) = view.sync.clone() {
                                progress.set(Some(sync));
                            }
                        }
                        next_sync_at.set(view.next_sync_at);
                        cooldown_secs.set(view.cooldown_secs);
                        view! { <TopLists view/> }.into_any()
                    }
                    Ok(None) => view! { <BadRange/> }.into_any(),
                    Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                }
            })}
        </KeepWhileLoading>
    }
}

/// The browser's clock in Unix seconds, every second while the page is open (nothing on
/// the server).
#[allow(unused_variables)]
fn tick_clock(clock: RwSignal<Option<i64>>) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let now = || (js_sys::Date::now() / 1000.0).floor() as i64;
        clock.set(Some(now()));
        if let Ok(interval) = set_interval_with_handle(
            move || {
                clock.try_set(Some(now()));
            },
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || interval.clear());
        }
    });
}

fn running(p: Option<&SyncProgress>) -> bool {
    p.is_some_and(|p| p.status == SyncStatus::Running)
}

/// While a sync runs, ask for its progress every 700 ms; when it ends, reload the lists
/// unless they already are that sync's. The page may be left before the timer fires or the
/// answer arrives: the timer is cleared then, and an answer that finds the page's signals
/// gone updates nothing (reading a disposed resource panicked, and took the WASM down).
fn watch_progress(
    progress: RwSignal<Option<SyncProgress>>,
    reloads: RwSignal<u32>,
    shown_sync: impl Fn() -> Option<Option<i64>> + Copy + 'static,
) {
    Effect::new(move |_| {
        if !running(progress.get().as_ref()) {
            return;
        }
        let timer = set_timeout_with_handle(
            move || {
                leptos::task::spawn_local(async move {
                    let Ok(Some(latest)) = get_sync_status().await else {
                        return;
                    };
                    let Some(shown) = shown_sync() else {
                        return; // the page is gone
                    };
                    let ended = latest.status != SyncStatus::Running;
                    let already_shown =
                        latest.status == SyncStatus::Succeeded && shown == Some(latest.run_id);
                    if progress.try_set(Some(latest)).is_some() {
                        return; // the page is gone
                    }
                    if ended && !already_shown {
                        reloads.try_update(|n| *n += 1);
                    }
                });
            },
            std::time::Duration::from_millis(700),
        );
        if let Ok(timer) = timer {
            on_cleanup(move || timer.clear());
        }
    });
}

#[component]
fn SyncState(
    progress: RwSignal<Option<SyncProgress>>,
    refused: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <p class="sync__state" role="status" aria-live="polite" data-testid="sync-state">
            {move || refused.get().or_else(|| progress.get().map(|p| match p.status {
                SyncStatus::Running => format!(
                    "Syncing: {} ({} of {})",
                    p.current.unwrap_or_else(|| "starting".into()),
                    p.done_steps,
                    p.total_steps
                ),
                SyncStatus::Succeeded => format!(
                    "Synced {} artists and {} tracks.",
                    p.artists.unwrap_or(0),
                    p.tracks.unwrap_or(0)
                ),
                SyncStatus::Failed => format!(
                    "The sync failed: {}",
                    p.error.unwrap_or_else(|| "unknown reason".into())
                ),
            }))}
        </p>
    }
}

/// Synced, and Spotify has nothing for this range: a new account, or too little listening.
#[component]
fn NothingYet(what: &'static str) -> impl IntoView {
    view! {
        <section class="empty" data-testid="synced-empty">
            <h2>"Nothing here yet"</h2>
            <p>
                "Your last sync worked, but Spotify has no " {what}
                " for you over this period yet. Listen a little more, sync again later, or try another range."
            </p>
        </section>
    }
}

#[component]
pub fn BadRange() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::BAD_REQUEST);
    }
    view! {
        <section class="notice notice--error" role="alert" data-testid="bad-range">
            <h2>"Unknown time range"</h2>
            <p>"Pick 4 weeks, 6 months or 1 year above."</p>
        </section>
    }
}

/// "2026-11-21T10:15:00.000Z" → "2026-11-21 10:15 UTC".
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => rfc3339.to_string(),
    }
}

/// "↑3" / "↓2" / "new", with words for screen readers; nothing when unchanged or unknown.
#[component]
fn MoveBadge(movement: Option<Movement>) -> impl IntoView {
    let (class, shown, said) = match movement? {
        Movement::Up(n) => (
            "move move--up",
            format!("↑{n}"),
            format!("up {n} since the last sync"),
        ),
        Movement::Down(n) => (
            "move move--down",
            format!("↓{n}"),
            format!("down {n} since the last sync"),
        ),
        Movement::New => (
            "move move--new",
            "new".to_string(),
            "new since the last sync".to_string(),
        ),
        Movement::Same | Movement::Left => return None,
    };
    Some(view! {
        <span class=class data-testid="movement">
            <span aria-hidden="true">{shown}</span>
            <span class="visually-hidden">{said}</span>
        </span>
    })
}

#[component]
fn TopLists(view: TopView) -> impl IntoView {
    let Some(lists) = view.lists else {
        if view.ever_synced && view.sync.is_none() {
            return view! { <NothingYet what="top artists or tracks"/> }.into_any();
        }
        return view! {
            <section class="empty" data-testid="never-synced">
                <h2>"Your first sync is on its way"</h2>
                <p>"Personalify is fetching your top artists and tracks from Spotify. This page fills in when it is done."</p>
            </section>
        }
        .into_any();
    };
    if lists.artists.is_empty() && lists.tracks.is_empty() {
        return view! { {summary(&lists)} <NothingYet what="top artists or tracks"/> }.into_any();
    }
    let chart = lists
        .genre_shares()
        .filter(|shares| !shares.is_empty())
        .map(|shares| {
            view! {
                <Chart
                    src=genre_chart_url(lists.range, lists.sync_id)
                    label=genre_summary(shares)
                    testid="genre-chart"
                />
            }
        });
    let artists = lists
        .artists
        .iter()
        .map(|a| {
            let movement = lists.movement(a.rank, a.previous_rank);
            view! { <ArtistItem artist=a.clone() movement/> }
        })
        .collect_view();
    let tracks = lists
        .tracks
        .iter()
        .map(|t| {
            let movement = lists.movement(t.rank, t.previous_rank);
            view! { <TrackItem track=t.clone() movement/> }
        })
        .collect_view();
    view! {
        {summary(&lists)}
        <div class="panels">
            <section class="panel" aria-labelledby="artists-title">
                <h2 id="artists-title">"Top artists"</h2>
                <ol class="ranked" data-testid="top-artists">{artists}</ol>
            </section>
            <section class="panel" aria-labelledby="tracks-title">
                <h2 id="tracks-title">"Top tracks"</h2>
                <ol class="ranked" data-testid="top-tracks">{tracks}</ol>
            </section>
            <section class="panel" aria-labelledby="genres-title">
                <h2 id="genres-title">"Genres"</h2>
                <div class="genre-body">
                    {chart}
                    <GenreList genres=lists.genres/>
                </div>
            </section>
        </div>
        // Phones: one column, so a bar at the bottom (where a thumb is) jumps between them.
        <nav class="jump" aria-label="Jump to a section" data-testid="jump">
            <a href="#artists-title">"Artists"</a>
            <a href="#tracks-title">"Tracks"</a>
            <a href="#genres-title">"Genres"</a>
        </nav>
    }
    .into_any()
}

/// The summary cards.
fn summary(lists: &DashboardLists) -> impl IntoView {
    let top_genre = match &lists.genres {
        Genres::Available { shares } => shares
            .first()
            .map(|s| s.genre.clone())
            .unwrap_or_else(|| "none listed".into()),
        Genres::Unavailable => "not provided by Spotify".into(),
    };
    let top_track = lists
        .tracks
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| "—".into());
    view! {
        <dl class="cards" data-testid="summary">
            <div class="card"><dt>"Top genre"</dt><dd>{top_genre}</dd></div>
            <div class="card"><dt>"Artists in your top list"</dt><dd>{lists.artist_count}</dd></div>
            <div class="card"><dt>"Most played track"</dt><dd>{top_track}</dd></div>
            <div class="card"><dt>"Last sync"</dt>
                <dd><time datetime=lists.synced_at.clone()>{short_time(&lists.synced_at)}</time></dd>
            </div>
        </dl>
    }
}

#[component]
fn ArtistItem(artist: ArtistRow, movement: Option<Movement>) -> impl IntoView {
    view! {
        <li class="ranked__item">
            <span class="ranked__rank">{artist.rank}</span>
            <Cover url=artist.image_url/>
            <span class="ranked__text">
                <a class="ranked__title" href=format!("/artist/{}", artist.id)>{artist.name}</a>
                {(!artist.genres.is_empty()).then(|| view! { <span class="ranked__meta">{artist.genres}</span> })}
            </span>
            <MoveBadge movement/>
        </li>
    }
}

#[component]
fn TrackItem(track: TrackRow, movement: Option<Movement>) -> impl IntoView {
    view! {
        <li class="ranked__item">
            <span class="ranked__rank">{track.rank}</span>
            <Cover url=track.image_url/>
            <span class="ranked__text">
                <span class="ranked__title">{track.name}</span>
                <span class="ranked__meta">{track.details}</span>
            </span>
            <MoveBadge movement/>
        </li>
    }
}

#[component]
fn GenreList(genres: Genres) -> impl IntoView {
    match genres {
        Genres::Unavailable => view! {
            <p class="muted" data-testid="genres-unavailable">
                "Spotify did not provide genres for your artists (apps in Development Mode no longer get them), so there is no genre breakdown."
            </p>
        }
        .into_any(),
        Genres::Available { shares } => view! {
            <ol class="genres" data-testid="genres">
                {shares.into_iter().map(|s| {
                    let pct = percent(s.share);
                    view! {
                        <li class="genres__item">
                            <span class="genres__name">{s.genre}</span>
                            <span class="genres__bar" aria-hidden="true">
                                <span class="genres__fill" style=format!("width: {}%", (s.share * 100.0).min(100.0))></span>
                            </span>
                            <span class="genres__pct">{format!("{pct}%")}</span>
                        </li>
                    }
                }).collect_view()}
            </ol>
        }
        .into_any(),
    }
}
