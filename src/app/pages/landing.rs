use crate::api::site::{get_site_info, SiteInfo};
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::range_preview::RangePreview;
use crate::app::components::top_bar::TopBar;
use leptos::prelude::*;
use leptos_meta::Title;

/// The start page: what Personalify is, and the two ways in.
#[component]
pub fn Landing() -> impl IntoView {
    let info = Resource::new(|| (), |_| get_site_info());

    view! {
        <Title text=""/>
        <TopBar/>
        <main class="page">
            <section class="hero" aria-labelledby="hero-title">
                <div class="hero__text">
                    <h1 id="hero-title">"Your listening, on your own server"</h1>
                    <p class="lead">
                        "Personalify keeps your Spotify top artists, tracks and genres for the last 4 weeks, "
                        "6 months and year, and shows how they move from one sync to the next. "
                        "It runs on your machine; your data stays there."
                    </p>
                    <Suspense fallback=|| view! { <div class="actions" aria-busy="true"></div> }>
                        {move || Suspend::new(async move {
                            match info.await {
                                Ok(info) => view! { <SignInActions info/> }.into_any(),
                                Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                            }
                        })}
                    </Suspense>
                </div>
                <RangePreview/>
            </section>
            <section class="features" aria-label="What you get">
                <article class="feature">
                    <h2>"Three time ranges"</h2>
                    <p>"Switch between 4 weeks, 6 months and a year without reloading."</p>
                </article>
                <article class="feature">
                    <h2>"History that moves"</h2>
                    <p>"Every sync is kept, so you see who climbed, who fell and who is new."</p>
                </article>
                <article class="feature">
                    <h2>"Genres, weighted"</h2>
                    <p>"Genre shares count how high an artist ranks, not only that they appear."</p>
                </article>
            </section>
        </main>
        <footer class="footer">
            <p>"Personalify is self-hosted and not affiliated with Spotify."</p>
        </footer>
    }
}

#[component]
fn SignInActions(info: SiteInfo) -> impl IntoView {
    let demo = info.demo_mode;
    view! {
        <div class="actions">
            {if demo {
                view! {
                    <span class="button button--spotify button--disabled" aria-disabled="true">
                        "Log in with Spotify"
                    </span>
                }
                    .into_any()
            } else {
                view! { <a class="button button--spotify" href="/auth/login" rel="external nofollow">"Log in with Spotify"</a> }
                    .into_any()
            }}
            {demo.then(|| view! {
                <a class="button button--secondary" href="/auth/demo" rel="external nofollow">"Try the demo"</a>
            })}
        </div>
        {demo.then(|| view! {
            <p class="notice" data-testid="demo-mode">
                <strong>"Demo mode. "</strong>
                "No Spotify app is configured on this server, so sign-in uses built-in demo listeners. "
                "The README explains how to connect your own Spotify app."
            </p>
        })}
    }
}
