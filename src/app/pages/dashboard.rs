use crate::api::viewer::{get_viewer, Viewer};
use leptos::prelude::*;
use leptos_meta::Title;

/// The signed-in home. Grows into the full dashboard (issue #5); today it greets the
/// person, shows the connection's state and lets them sign out.
#[component]
pub fn Dashboard() -> impl IntoView {
    let viewer = Resource::new(|| (), |_| get_viewer());
    view! {
        <Title text="Your dashboard"/>
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand__mark" aria-hidden="true"></span>
                "Personalify"
            </a>
        </header>
        <main class="page">
            <Suspense fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match viewer.await {
                        Ok(Some(viewer)) => view! { <SignedIn viewer/> }.into_any(),
                        Ok(None) => view! {
                            <section class="page--narrow">
                                <h1>"You're not signed in"</h1>
                                <p>"Sign in to see your top artists, tracks and genres."</p>
                                <p><a class="button button--primary" href="/">"Go to the start page"</a></p>
                            </section>
                        }.into_any(),
                        Err(err) => view! {
                            <p class="notice notice--error" role="alert">{err.to_string()}</p>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn SignedIn(viewer: Viewer) -> impl IntoView {
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
                    <a rel="external" href=if viewer.demo_mode { "/auth/demo" } else { "/auth/login" }>"Sign in again"</a>
                </p>
            })}
            <p class="lead">"Your top artists and tracks appear here after your first sync."</p>
        </section>
    }
}
