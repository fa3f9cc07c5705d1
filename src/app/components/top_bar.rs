use leptos::prelude::*;

/// The brand bar at the top of every page.
#[component]
pub fn TopBar() -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand__mark" aria-hidden="true"></span>
                "Personalify"
            </a>
        </header>
    }
}
