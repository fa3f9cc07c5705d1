//! Where a chart goes: an empty box holding the server-built ECharts option. ECharts fills
//! it in the browser (`public/charts.js` watches for these boxes, also after client-side
//! navigation), before and independently of hydration. The box has a fixed height, so
//! drawing never shifts the page, and its accessible name says what the chart shows.

use crate::domain::ChartSpec;
use leptos::prelude::*;

#[component]
pub fn Chart(
    spec: ChartSpec,
    /// Extra class for the box, e.g. `chart--tall`.
    #[prop(optional)]
    class: &'static str,
    #[prop(optional)] testid: &'static str,
) -> impl IntoView {
    view! {
        <div
            class=format!("chart {class}")
            data-chart=spec.option
            data-testid=testid
            role="img"
            aria-label=spec.summary
        ></div>
    }
}
