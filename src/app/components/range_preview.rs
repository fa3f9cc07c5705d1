//! A small interactive preview of the dashboard on the start page: a time-range switch over
//! sample top lists. It is also the page's hydration probe: the switch only works once the
//! WASM runs, and `data-hydrated` turns "true" at that moment (the end-to-end tests rely on it).

use crate::domain::TimeRange;
use leptos::prelude::*;

/// Sample lists (invented names) showing how tastes differ between ranges.
fn sample_artists(range: TimeRange) -> [&'static str; 5] {
    match range {
        TimeRange::ShortTerm => [
            "Nova Lights",
            "The Paper Tides",
            "Kiko Sora",
            "Marrow & Moss",
            "Velvet Static",
        ],
        TimeRange::MediumTerm => [
            "The Paper Tides",
            "Ruth Calder",
            "Nova Lights",
            "Lowland Choir",
            "Kiko Sora",
        ],
        TimeRange::LongTerm => [
            "Ruth Calder",
            "Lowland Choir",
            "Ada & the Orbits",
            "The Paper Tides",
            "Salt Lake Radio",
        ],
    }
}

#[component]
pub fn RangePreview() -> impl IntoView {
    let selected = RwSignal::new(TimeRange::ShortTerm);
    let hydrated = RwSignal::new(false);
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| hydrated.set(true));

    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let idx = TimeRange::ALL
            .iter()
            .position(|r| *r == selected.get_untracked())
            .unwrap_or(0);
        let next = match ev.key().as_str() {
            "ArrowRight" => (idx + 1) % TimeRange::ALL.len(),
            "ArrowLeft" => (idx + TimeRange::ALL.len() - 1) % TimeRange::ALL.len(),
            "Home" => 0,
            "End" => TimeRange::ALL.len() - 1,
            _ => return,
        };
        ev.prevent_default();
        selected.set(TimeRange::ALL[next]);
        focus_tab(TimeRange::ALL[next]);
    };

    view! {
        <section
            class="preview"
            aria-labelledby="preview-title"
            data-testid="range-preview"
            data-hydrated=move || hydrated.get().to_string()
        >
            <h2 id="preview-title" class="preview__title">"A taste of the dashboard"</h2>
            <div class="segmented" role="tablist" aria-label="Time range" on:keydown=on_key>
                {TimeRange::ALL
                    .into_iter()
                    .map(|range| {
                        let is_selected = move || selected.get() == range;
                        view! {
                            <button
                                type="button"
                                role="tab"
                                id=format!("preview-tab-{}", range.as_str())
                                class="segmented__option"
                                aria-selected=move || is_selected().to_string()
                                aria-controls="preview-panel"
                                tabindex=move || if is_selected() { "0" } else { "-1" }
                                on:click=move |_| selected.set(range)
                            >
                                {range.label()}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <div
                id="preview-panel"
                class="preview__panel"
                role="tabpanel"
                aria-labelledby=move || format!("preview-tab-{}", selected.get().as_str())
            >
                <p class="preview__caption">
                    "Top artists, last " {move || selected.get().label()} " (sample)"
                </p>
                <ol class="preview__list" data-testid="preview-list">
                    {move || {
                        sample_artists(selected.get())
                            .into_iter()
                            .map(|name| view! { <li>{name}</li> })
                            .collect_view()
                    }}
                </ol>
            </div>
        </section>
    }
}

/// Move keyboard focus with the selection (WAI-ARIA tabs pattern); browser only.
fn focus_tab(range: TimeRange) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        if let Some(el) = leptos::prelude::document()
            .get_element_by_id(&format!("preview-tab-{}", range.as_str()))
            .and_then(|el| el.dyn_into::<leptos::web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = range;
}
