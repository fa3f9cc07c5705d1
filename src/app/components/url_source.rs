//! Reading the URL (a route parameter, the query) as a resource's source.

use leptos::prelude::*;

/// `memo`, a value read from the URL, as a resource's source. In the browser it is the live
/// memo, so a link to another range or artist fetches again. On the server it is the value
/// the memo had when the page was built: a resource's first run is a task of its own, which
/// can run after the request has ended and the router's URL signal is disposed, and reading
/// the memo then panics inside the router (the soak saw it under load). One request never
/// changes its URL, so nothing is lost.
pub fn url_source<T>(memo: Memo<T>) -> impl Fn() -> T + Clone + Send + Sync + 'static
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    #[cfg(feature = "ssr")]
    {
        let value = memo.get_untracked();
        move || value.clone()
    }
    #[cfg(not(feature = "ssr"))]
    {
        move || memo.get()
    }
}
