use leptos::prelude::*;

/// A `Transition` whose content stays on screen, dimmed and `aria-busy`, while what it
/// reads reloads (another range, a finished sync), so the page neither flashes a loading
/// line nor loses its scroll position. `loading` shows only before the first content.
///
/// Only the browser tracks "pending". A page the server writes is never pending, and
/// `Transition`'s `set_pending` there is an effect on another thread that reads the
/// boundary's task list while the render writes it: Leptos 0.8 reads it with a try-lock and,
/// when that fails, panics as if the value had been disposed, and the render reading
/// `pending` meanwhile fails the same way (the soak saw ~20 such panics in 40 000 pages, 6
/// of them while a page was being written, which cut its response off).
#[component]
pub fn KeepWhileLoading(loading: &'static str, children: ChildrenFn) -> impl IntoView {
    let fallback = move || view! { <p aria-busy="true">{loading}</p> };
    #[cfg(feature = "ssr")]
    {
        view! {
            <div class="lists" aria-busy="false">
                <Transition fallback>{children()}</Transition>
            </div>
        }
    }
    #[cfg(not(feature = "ssr"))]
    {
        let pending = RwSignal::new(false);
        view! {
            <div class="lists" class:lists--pending=move || pending.get() aria-busy=move || pending.get().to_string()>
                <Transition fallback set_pending=pending>{children()}</Transition>
            </div>
        }
    }
}
