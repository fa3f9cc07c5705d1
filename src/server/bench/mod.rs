//! Benchmarks, run from the release binary: `personalify bench-sync` (`make bench`),
//! `personalify bench-pages` (`make bench-pages`), `personalify bench-listening`
//! (`make bench-listening`), `personalify bench-import` (`make bench-import`) and `personalify soak` (`make soak`). Measurements, not tests: they print
//! numbers against the real stores and assert nothing.

pub mod import;
pub mod listening;
pub mod load;
pub mod pages;
pub mod shards;
pub mod soak;
pub mod sync;

use std::time::Duration;

/// `url` with its database replaced by `database`.
pub(super) fn with_database(url: &str, database: &str) -> Result<String, String> {
    let mut url = url::Url::parse(url).map_err(|e| e.to_string())?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}

pub(super) async fn recreate_database(admin_url: &str, database: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("cannot reach PostgreSQL to create {database}: {e}"))?;
    for statement in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("CREATE DATABASE {database}"),
    ] {
        sqlx::query(&statement)
            .execute(&mut admin)
            .await
            .map_err(|e| format!("{statement}: {e}"))?;
    }
    Ok(())
}

pub(super) async fn drop_database(admin_url: &str, database: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

fn location(res: &reqwest::Response) -> Result<String, String> {
    res.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("expected a redirect, got {}", res.status()))
}

/// Sign a demo listener in through the real OAuth flow of the server at `base`.
async fn sign_in(base: &str, http: &reqwest::Client, demo_user: &str) -> Result<(), String> {
    let start = http
        .get(format!("{base}/auth/demo?user={demo_user}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let state_cookie = start
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pfy_oauth="))
        .and_then(|c| c.split(';').next())
        .ok_or("no sign-in state cookie")?
        .to_string();
    let consent = http
        .get(location(&start)?)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let done = http
        .get(location(&consent)?)
        .header(reqwest::header::COOKIE, state_cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if location(&done)? != "/dashboard" {
        return Err(format!("sign-in of {demo_user} failed ({})", done.status()));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
