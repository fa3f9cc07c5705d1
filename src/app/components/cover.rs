use leptos::prelude::*;

/// A square cover in a fixed box: no layout shift while it loads, lazy below the fold.
/// Decorative (the name next to it says what it is).
#[component]
pub fn Cover(
    url: Option<String>,
    /// Edge in CSS pixels.
    #[prop(default = 48)]
    size: u32,
) -> impl IntoView {
    let class = if size > 48 {
        "cover cover--large"
    } else {
        "cover"
    };
    view! {
        <span class=class aria-hidden="true">
            {url.map(|src| view! { <img src=src alt="" width=size height=size loading="lazy" decoding="async"/> })}
        </span>
    }
}
