use leptos::prelude::*;

/// A `Transition` whose content stays on screen, dimmed and `aria-busy`, while what it
/// reads reloads (another range, a finished sync), so the page neither flashes a loading
/// line nor loses its scroll position. `loading` shows only before the first content.
#[component]
pub fn KeepWhileLoading(loading: &'static str, children: ChildrenFn) -> impl IntoView {
    let pending = RwSignal::new(false);
    // `try_get`: on the server, under load, Leptos has been seen (the soak, 6 times in
    // 40 000 pages) disposing this signal's owner while the page was still being written;
    // reading it then must not panic the render (the client saw a cut-off response).
    let is_pending = move || pending.try_get().unwrap_or(false);
    view! {
        <div class="lists" class:lists--pending=is_pending aria-busy=move || is_pending().to_string()>
            <Transition fallback=move || view! { <p aria-busy="true">{loading}</p> } set_pending=pending>
                {children()}
            </Transition>
        </div>
    }
}
