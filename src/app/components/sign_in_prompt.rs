use leptos::prelude::*;

/// What a signed-in page shows to someone who is not: why, and the way to the start page.
/// `heading_level` 2 where the page already has its own h1.
#[component]
pub fn SignInPrompt(
    #[prop(optional)] why: &'static str,
    #[prop(default = 1)] heading_level: u8,
) -> impl IntoView {
    let heading = if heading_level == 1 {
        view! { <h1>"You're not signed in"</h1> }.into_any()
    } else {
        view! { <h2>"You're not signed in"</h2> }.into_any()
    };
    view! {
        <section class="page--narrow">
            {heading}
            {(!why.is_empty()).then(|| view! { <p>{why}</p> })}
            <p><a class="button button--primary" href="/">"Go to the start page"</a></p>
        </section>
    }
}
