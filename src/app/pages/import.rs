use crate::api::imports::{get_imports, ImportRow, ImportsView};
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

/// `/import`, in its own WASM chunk (`cargo leptos --split`).
pub struct ImportRoute;

#[lazy_route]
impl LazyRoute for ImportRoute {
    fn data() -> Self {
        ImportRoute
    }

    fn view(this: Self) -> AnyView {
        let ImportRoute = this;
        view! { <Import/> }.into_any()
    }
}

/// Import Spotify's privacy export: a plain form (it works without JavaScript;
/// `public/enhance.js` adds upload progress), what is kept and what is not, and each import
/// with how far it has got (the page looks again every two seconds while one runs).
#[component]
pub fn Import() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let data = Resource::new(move || refresh.get(), |_| get_imports());
    #[cfg(not(feature = "ssr"))]
    Effect::new(move |_| {
        if let Some(Ok(Some(view))) = data.get() {
            if view.imports.iter().any(ImportRow::running) {
                set_timeout(
                    move || refresh.update(|n| *n += 1),
                    std::time::Duration::from_secs(2),
                );
            }
        }
    });
    view! {
        <Title text="Import your history"/>
        <TopBar/>
        <main class="page">
            <div class="welcome__row">
                <h1>"Import your streaming history"</h1>
                <a class="button button--secondary" href="/listening">"Your listening"</a>
            </div>
            <p>
                "Spotify shows apps only your last 50 plays. For everything before, ask Spotify for your "
                <strong>"extended streaming history"</strong>
                " on its privacy page (spotify.com/account/privacy); it arrives by email as "
                <code>"my_spotify_data.zip"</code>
                ". Upload that ZIP here, or the "
                <code>"Streaming_History_Audio_….json"</code>
                " files in it. The older account data ("
                <code>"StreamingHistory_music_….json"</code>
                ", a year, no track ids) works too."
            </p>
            // A Transition: while an import runs the list is fetched again every two seconds,
            // and stays on screen meanwhile.
            <Transition fallback=|| view! { <p aria-busy="true">"Loading your imports…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(view)) => view! { <ImportBody view/> }.into_any(),
                        Ok(None) => view! { <SignInPrompt heading_level=2/> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                    }
                })}
            </Transition>
        </main>
    }
}

#[component]
fn ImportBody(view: ImportsView) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="upload-title">
            <h2 id="upload-title">"Upload"</h2>
            <form id="import-form" class="import-form" method="post" action="/import/upload" enctype="multipart/form-data" data-testid="import-form">
                <label for="import-file">{format!("Your export: a ZIP or JSON file, up to {} MB", view.max_mb)}</label>
                <input id="import-file" type="file" name="file" accept=".zip,.json,application/zip,application/json" required/>
                <button class="button button--primary" type="submit">"Import"</button>
                <progress id="import-upload" max="100" value="0" hidden aria-label="Upload progress"></progress>
                <p id="import-message" class="muted" role="status" aria-live="polite" data-testid="import-message"></p>
            </form>
            {view.sample.then(|| view! {
                <p data-testid="sample-export">
                    "Demo mode: "
                    <a href="/import/sample.zip" download="my_spotify_data.zip" rel="external">"download the demo listener's sample export"</a>
                    " (a year of plays, in Spotify's format) and upload it here to try this."
                </p>
            })}
            <details>
                <summary>"What is kept"</summary>
                <ul class="plain">
                    <li>"Every music play of 30 seconds or more, with its time, track, artist and album."</li>
                    <li>"Plays Personalify already has, from recently played or an earlier import, are not counted twice; importing the same file again adds nothing."</li>
                    <li>"Podcast episodes and audiobooks are skipped, and so are plays under 30 seconds and entries without a track or artist name; the result says how many."</li>
                    <li>"Local files are kept, by their names. Nothing else in the export (playlists, library, account details) is read."</li>
                    <li>"An import cut off (a restart, a store down) goes on where it stopped; nothing is half imported. If the stores stay down for an hour, it stops and says so."</li>
                    <li>"Entries that cannot be read (a value of the wrong kind) are skipped and counted as unreadable. Very long names are cut to 512 characters."</li>
                </ul>
            </details>
        </section>
        <section class="panel history-panel" aria-labelledby="imports-title" data-testid="imports">
            <h2 id="imports-title">"Your imports"</h2>
            {if view.imports.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain imports">
                        {view.imports.into_iter().map(|i| view! { <ImportItem i/> }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn ImportItem(i: ImportRow) -> impl IntoView {
    let mut skipped = format!(
        "{} podcast or audiobook entries, {} without a track name, {} under 30 s",
        i.podcasts, i.unknown, i.short
    );
    if i.unreadable > 0 {
        skipped.push_str(&format!(", {} unreadable", i.unreadable));
    }
    skipped.push_str(" skipped");
    let state = match (i.status.as_str(), i.stored) {
        ("done", Some(stored)) => format!(
            "Done: {stored} new plays added ({} were already here). {skipped}.",
            i.plays.saturating_sub(u64::try_from(stored).unwrap_or(0))
        ),
        ("failed", _) => format!("Not imported: {}", i.error.clone().unwrap_or_default()),
        ("canceled", _) => "Canceled: nothing of this file was added.".to_string(),
        _ if i.waiting => format!(
            "Waiting: Personalify's stores are not answering; the import goes on when they are \
             back ({} entries read so far).",
            i.entries
        ),
        ("storing", _) => format!("Read {} plays; adding them…", i.plays),
        _ => format!("Reading: {} entries so far, {} plays.", i.entries, i.plays),
    };
    let running = i.running();
    let cancel = format!("/import/{}/cancel", i.id);
    view! {
        <li class="imports__item" data-testid=format!("import-{}", i.status) data-import-id=i.id>
            <strong>{i.file_name}</strong>
            <span class="muted">{format!(" · {} · {}", i.megabytes, i.created_at)}</span>
            {running.then(|| view! { <progress aria-label="Import progress"></progress> })}
            <p class=if i.status == "failed" { "notice" } else { "" }>{state}</p>
            // A plain form: it works without JavaScript.
            {running.then(|| view! {
                <form method="post" action=cancel class="imports__cancel">
                    <button class="button button--secondary" type="submit" data-testid="import-cancel">"Cancel"</button>
                </form>
            })}
        </li>
    }
}
