use crate::api::viewer::{get_viewer, Viewer};
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

/// `/settings`, in its own WASM chunk (`cargo leptos --split`): rarely opened.
pub struct SettingsRoute;

#[lazy_route]
impl LazyRoute for SettingsRoute {
    fn data() -> Self {
        SettingsRoute
    }

    fn view(this: Self) -> AnyView {
        let SettingsRoute = this;
        view! { <Settings/> }.into_any()
    }
}

/// "Your data": download everything the instance holds about you, or delete your account.
/// Both are plain links and forms to server routes (`server::account`), so they work
/// without JavaScript.
#[component]
pub fn Settings() -> impl IntoView {
    let viewer = Resource::new(|| (), |_| get_viewer());
    view! {
        <Title text="Your data"/>
        <TopBar/>
        <main class="page page--narrow">
            <Suspense fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match viewer.await {
                        Ok(Some(viewer)) => view! { <YourData viewer/> }.into_any(),
                        Ok(None) => view! {
                            <SignInPrompt why="Sign in to download or delete your data."/>
                        }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn YourData(viewer: Viewer) -> impl IntoView {
    view! {
        <h1>"Your data"</h1>
        <p>"Signed in as " <strong data-testid="viewer-name">{viewer.display_name}</strong> "."</p>
        <section class="data-section" aria-labelledby="export-title">
            <h2 id="export-title">"Download everything"</h2>
            <p>
                "One JSON file with everything this server holds about you: your profile, your Spotify connection (never its tokens), every sync, your current top lists, your sync history and your plays."
            </p>
            <a class="button button--primary" href="/account/export" download="" rel="external" data-testid="export">
                "Download my data"
            </a>
        </section>
        <section class="data-section" aria-labelledby="delete-title">
            <h2 id="delete-title">"Delete your account"</h2>
            <p>
                "Removes you from every store of this server — profile, Spotify connection, top lists, history, plays, cached pages — and signs you out. This cannot be undone; download your data first if you want to keep it."
            </p>
            <form class="confirm" method="post" action="/account/delete">
                <label for="confirm-delete">
                    "Type delete to confirm"
                    <input id="confirm-delete" name="confirm" type="text" autocomplete="off"
                        required pattern="delete" data-testid="confirm-delete"/>
                </label>
                <button type="submit" class="button button--danger" data-testid="delete-account">
                    "Delete my account"
                </button>
            </form>
        </section>
        <p><a href="/dashboard">"Back to your dashboard"</a></p>
    }
}
