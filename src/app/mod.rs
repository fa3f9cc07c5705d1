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
                // Upload progress on the Import page (the form works without it); tiny.
                <script src="/enhance.js" defer></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The document title for a page's own title (empty: the landing page). Page titles hold
/// names from Spotify, and leptos_meta writes the server's `<title>` text unescaped, so the
/// server escapes it here; in the browser the text goes to `document.title` as it is.
pub fn page_title(page: String) -> String {
    let title = if page.is_empty() {
        "Personalify".to_string()
    } else {
        format!("{page} · Personalify")
    };
    if cfg!(feature = "ssr") {
        escape_text(&title)
    } else {
        title
    }
}

/// `&`, `<` and `>` as character references: safe as element text (also `<title>`).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/personalify.css"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Meta name="description" content="Personalify: your top artists, tracks and genres over time, on your own server."/>
        <Title formatter=page_title/>
        <Router>
            // Pages wait for their data on the server (SsrMode::Async) so the HTML is complete
            // for readers without JavaScript; hydration then makes it interactive.
            <Routes fallback=pages::not_found::NotFound>
                <Route path=StaticSegment("") view=pages::landing::Landing ssr=SsrMode::Async/>
                <Route path=StaticSegment("dashboard") view=pages::dashboard::Dashboard ssr=SsrMode::Async/>
                <Route path=StaticSegment("settings") view={Lazy::<pages::settings::SettingsRoute>::new()} ssr=SsrMode::Async/>
                // History and artist pages load their code when first visited.
                <Route path=StaticSegment("history") view={Lazy::<pages::history::HistoryRoute>::new()} ssr=SsrMode::Async/>
                <Route path=(StaticSegment("artist"), ParamSegment("id")) view={Lazy::<pages::artist::ArtistRoute>::new()} ssr=SsrMode::Async/>
                <Route path=StaticSegment("listening") view={Lazy::<pages::listening::ListeningRoute>::new()} ssr=SsrMode::Async/>
                <Route path=StaticSegment("import") view={Lazy::<pages::import::ImportRoute>::new()} ssr=SsrMode::Async/>
                <Route path=StaticSegment("distributed") view={Lazy::<pages::distributed::DistributedRoute>::new()} ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}
