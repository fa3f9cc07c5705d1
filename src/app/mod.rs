//! The UI shared by server rendering and hydration: the HTML shell, routes, pages.

pub mod components;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    Lazy, ParamSegment, SsrMode, StaticSegment,
};

/// The document around every page. Rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                // Draws the page's charts, if any (it loads ECharts only then); tiny, deferred.
                <script src="/charts.js" defer></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/personalify.css"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Meta name="description" content="Personalify: your top artists, tracks and genres over time, on your own server."/>
        <Title formatter=|page: String| if page.is_empty() { "Personalify".to_string() } else { format!("{page} · Personalify") }/>
        <Router>
            // Pages wait for their data on the server (SsrMode::Async) so the HTML is complete
            // for readers without JavaScript; hydration then makes it interactive.
            <Routes fallback=pages::not_found::NotFound>
                <Route path=StaticSegment("") view=pages::landing::Landing ssr=SsrMode::Async/>
                <Route path=StaticSegment("dashboard") view=pages::dashboard::Dashboard ssr=SsrMode::Async/>
                // History and artist pages load their code when first visited.
                <Route path=StaticSegment("history") view={Lazy::<pages::history::HistoryRoute>::new()} ssr=SsrMode::Async/>
                <Route path=(StaticSegment("artist"), ParamSegment("id")) view={Lazy::<pages::artist::ArtistRoute>::new()} ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}
