use leptos::prelude::*;
use leptos_meta::Title;

/// Any path no route claims: a page a person can act on, served with HTTP 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }

    view! {
        <Title text="Page not found"/>
        <main class="page page--narrow">
            <h1>"This page doesn't exist"</h1>
            <p>"The link may be old, or the address mistyped."</p>
            <p><a class="button button--primary" href="/">"Go to the start page"</a></p>
        </main>
    }
}
