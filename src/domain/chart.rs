//! A chart as it crosses from the server to the page: ECharts option JSON built on the
//! server (charming, `server::charts`), plus a sentence that says what it shows for people
//! who cannot see it. The browser only draws it (`public/charts.js`), so charming never
//! reaches the WASM.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartSpec {
    /// The ECharts `option` object, as JSON.
    pub option: String,
    /// What the chart shows, in words (its accessible name).
    pub summary: String,
}
