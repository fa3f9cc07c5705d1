//! The time-range switch of the signed-in pages: plain links to `?range=`, so it works
//! without JavaScript and the back button walks through the ranges.

use crate::domain::TimeRange;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The range in the URL: 4 weeks when absent, `Err` (the raw text) when unknown.
pub fn range_from_url() -> Memo<Result<TimeRange, String>> {
    let query = use_query_map();
    Memo::new(move |_| match query.read().get("range") {
        None => Ok(TimeRange::ShortTerm),
        Some(raw) => raw
            .parse::<TimeRange>()
            .map_err(|_| raw.chars().take(40).collect()),
    })
}

#[component]
pub fn RangeSwitch(range: Memo<Result<TimeRange, String>>) -> impl IntoView {
    view! {
        <nav class="segmented segmented--links" aria-label="Time range">
            {TimeRange::ALL
                .into_iter()
                .map(|r| {
                    let current = move || range.get().ok() == Some(r);
                    view! {
                        // A plain link: the router still navigates client-side, but
                        // `<A>` would mark every range current (same path).
                        <a
                            href=format!("?range={}", r.as_str())
                            class="segmented__option"
                            aria-current=move || current().then_some("page")
                            data-range=r.as_str()
                        >
                            {r.label()}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
    }
}
