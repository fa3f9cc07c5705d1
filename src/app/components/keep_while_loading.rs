use leptos::prelude::*;

/// A `Transition` whose content stays on screen, dimmed and `aria-busy`, while what it
/// reads reloads (another range, a finished sync), so the page neither flashes a loading
/// line nor loses its scroll position. `loading` shows only before the first content.
#[component]
pub fn KeepWhileLoading(loading: &'static str, children: ChildrenFn) -> impl IntoView {
    let pending = RwSignal::new(false);
    view! {
        <div class="lists" class:lists--pending=move || pending.get() aria-busy=move || pending.get().to_string()>
            <Transition fallback=move || view! { <p aria-busy="true">{loading}</p> } set_pending=pending>
                {children()}
            </Transition>
        </div>
    }
}
