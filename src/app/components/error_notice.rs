use leptos::prelude::*;

/// A failure a page could not get past (a store down, a server function error), said in
/// words and announced to screen readers.
#[component]
pub fn ErrorNotice(message: String) -> impl IntoView {
    view! { <p class="notice notice--error" role="alert">{message}</p> }
}
