//! Where a chart goes: an empty box naming the URL of its ECharts option. `public/charts.js`
//! fetches the option (built by charming on the server) and draws it when the box nears the
//! viewport, before and independently of hydration, also after client-side navigation. The
//! page itself carries neither the option nor a second copy of the data: only the URL and
//! the chart's accessible name, said from data the page shows anyway. The box has a fixed
//! height, so drawing never shifts the page.

use leptos::prelude::*;

#[component]
pub fn Chart(
    /// Where the option comes from (`domain::chart::*_url`).
    src: String,
    /// What the chart shows, in words.
    label: String,
    /// Extra class for the box, e.g. `chart--tall`.
    #[prop(optional)]
    class: &'static str,
    #[prop(optional)] testid: &'static str,
) -> impl IntoView {
    view! {
        <div
            class=format!("chart {class}")
            data-chart-src=src
            data-testid=testid
            role="img"
            aria-label=label
        ></div>
    }
}
