use crate::api::distributed::get_distributed;
use crate::app::components::error_notice::ErrorNotice;
use crate::app::components::sign_in_prompt::SignInPrompt;
use crate::app::components::top_bar::TopBar;
use crate::domain::distributed::{is_remote_line, DistributedView, QueryRun};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

/// `/distributed`, in its own WASM chunk (`cargo leptos --split`).
pub struct DistributedRoute;

#[lazy_route]
impl LazyRoute for DistributedRoute {
    fn data() -> Self {
        DistributedRoute
    }

    fn view(this: Self) -> AnyView {
        let DistributedRoute = this;
        view! { <Distributed/> }.into_any()
    }
}

/// The seed design's psql walkthrough inside the product: the foreign server and tables on
/// `main`, then each cross-node query the Listening page runs for you, its result, and its
/// plan with the SQL the analytics node receives highlighted.
#[component]
pub fn Distributed() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_distributed());
    view! {
        <Title text="Distributed queries"/>
        <TopBar/>
        <main class="page">
            <div class="welcome__row">
                <h1>"Distributed queries"</h1>
                <a class="button button--secondary" href="/listening">"Back to your listening"</a>
            </div>
            <p class="muted">
                "Your plays live on the analytics nodes, PostgreSQL servers beside the main one, which reaches them through postgres_fdw: "
                "the tables below are partitioned by listener, each partition a foreign table on one node. Each query runs on main, sends its filter and grouping to the node holding the rows (the highlighted "
                <code>"Remote SQL"</code> " lines), and joins what comes back with main's own tables."
            </p>
            <Suspense fallback=|| view! { <p aria-busy="true">"Running the queries…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(view)) => view! { <DistributedBody view/> }.into_any(),
                        Ok(None) => view! { <SignInPrompt heading_level=2/> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string()/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn DistributedBody(view: DistributedView) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="server-title" data-testid="foreign-server">
            <h2 id="server-title">"The foreign server on main"</h2>
            <dl class="options">
                {view.server.into_iter().map(|(k, v)| view! {
                    <div><dt><code>{k}</code></dt><dd><code>{if v.is_empty() { "(empty)".to_string() } else { v }}</code></dd></div>
                }).collect_view()}
            </dl>
            {view.tables.into_iter().map(|t| {
                let label = format!("Columns of {}", t.name);
                view! {
                    <h3 class="card__title">"Partitioned table " <code>{t.name}</code></h3>
                    <pre class="sql" tabindex="0" role="region" aria-label=label>{t.columns.join("\n")}</pre>
                }
            }).collect_view()}
        </section>
        <section class="panel" aria-labelledby="shards-title" data-testid="placements">
            <h2 id="shards-title">"Shards"</h2>
            <p class="muted">
                "Each of those tables is split by listener into 8 partitions; each partition is a foreign table on the node it is placed on. "
                {view.your_partition.map(|p| format!("Your rows are in partition {p}, so a query for you reads that partition on one node."))}
            </p>
            <div class="table-scroll" tabindex="0" role="region" aria-label="Where each partition is">
                <table class="ranks">
                    <caption>"Partitions and their nodes"</caption>
                    <thead><tr><th scope="col">"Partition"</th><th scope="col" class="name">"Node"</th></tr></thead>
                    <tbody>
                        {view.placements.into_iter().map(|(p, node)| {
                            let yours = view.your_partition == Some(p);
                            view! {
                                <tr class:yours=yours>
                                    <td class="name">{format!("p{p}")}{yours.then_some(" (yours)")}</td>
                                    <td class="name">{node}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
        {view.queries.into_iter().map(|q| view! { <QueryPanel q/> }).collect_view()}
    }
}

#[component]
fn QueryPanel(q: QueryRun) -> impl IntoView {
    let id = format!("query-{}-title", q.name);
    let heading_id = id.clone();
    let result = match (&q.error, q.ms) {
        (Some(error), _) => {
            view! { <p class="notice" role="status">{error.clone()}</p> }.into_any()
        }
        (None, ms) => {
            let numeric = q.numeric_columns();
            let class =
                move |i: usize| (!numeric.get(i).copied().unwrap_or(true)).then_some("name");
            let caption = format!(
                "Result: {} row{} in {:.1} ms{}{}",
                q.row_count,
                if q.row_count == 1 { "" } else { "s" },
                ms.unwrap_or(0.0),
                if q.row_count > q.rows.len() {
                    format!(", the first {} shown", q.rows.len())
                } else {
                    String::new()
                },
                match q.counted_secs_ago {
                    Some(secs) => format!(
                        ", counted {secs} s ago (kept a minute for everyone: it reads every play)"
                    ),
                    None => String::new(),
                }
            );
            view! {
                <div class="table-scroll" tabindex="0" role="region" aria-label=format!("Result of {}", q.title)>
                    <table class="ranks" data-testid="query-result">
                        <caption>{caption}</caption>
                        <thead><tr>{q.columns.iter().enumerate().map(|(i, c)| view! { <th scope="col" class=class(i)>{c.clone()}</th> }).collect_view()}</tr></thead>
                        <tbody>
                            {q.rows.iter().map(|row| view! {
                                <tr>{row.iter().enumerate().map(|(i, cell)| view! { <td class=class(i)>{cell.clone()}</td> }).collect_view()}</tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }
            .into_any()
        }
    };
    view! {
        <section class="panel history-panel" aria-labelledby=id data-testid=format!("query-{}", q.name)>
            <h2 id=heading_id>{q.title.clone()}</h2>
            <p class="muted">{q.about.clone()}</p>
            <h3 class="card__title">"The query, on main"</h3>
            <pre class="sql" tabindex="0" role="region" aria-label=format!("SQL of {}", q.title)>{q.sql.clone()}</pre>
            <ul class="plain muted">{q.params.iter().map(|p| view! { <li><code>{p.clone()}</code></li> }).collect_view()}</ul>
            {result}
            <h3 class="card__title"><code>"EXPLAIN (VERBOSE)"</code></h3>
            <pre class="sql plan" data-testid="plan" tabindex="0" role="region" aria-label=format!("Plan of {}", q.title)>
                {q.plan.iter().map(|line| if is_remote_line(line) {
                    view! { <mark>{line.clone()}</mark>"\n" }.into_any()
                } else {
                    view! { {line.clone()}"\n" }.into_any()
                }).collect_view()}
            </pre>
            {(!q.ran_on.is_empty()).then(|| view! {
                <p class="muted" data-testid="ran-on">"Ran on: "
                    {q.ran_on.iter().enumerate().map(|(i, line)| view! {
                        {(i > 0).then_some("; ")}<code>{line.clone()}</code>
                    }).collect_view()}
                </p>
            })}
        </section>
    }
}
