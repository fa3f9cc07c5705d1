//! Mounted under a prefix, and served alone with `serve`.

use super::*;

#[tokio::test]
async fn nested_under_a_prefix_links_still_work() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let root = format!("http://{}", listener.local_addr().expect("address"));
    let mut config = SimConfig::new(
        CLIENT_ID,
        vec![REDIRECT_URI.to_string()],
        format!("{root}/sim/"),
    );
    config.pinned_day = Some(DAY);
    let sim = Simulator::new(config);
    let app = axum::Router::new().nest("/sim", sim.router());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    let s = TestSim {
        sim,
        base: format!("{root}/sim"),
        http: client(),
        _shutdown: tx,
    };
    let tokens = s.login(None).await;
    let (_, page) = s
        .get_json("/v1/me/top/artists?limit=50", &tokens.access)
        .await;
    let next = page["next"].as_str().expect("next");
    assert!(
        next.starts_with(&format!("{root}/sim/v1/me/top/artists?")),
        "{next}"
    );
    assert_eq!(s.get_json(next, &tokens.access).await.0, StatusCode::OK);
    // Counted relative to the simulator's own root.
    assert_eq!(s.sim.request_count("/v1/me/top"), 2);
}

#[tokio::test]
async fn serve_answers_until_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let sim = Simulator::new(SimConfig::new(
        CLIENT_ID,
        vec![REDIRECT_URI.to_string()],
        base.clone(),
    ));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(sim, listener, async move {
        let _ = rx.await;
    }));
    let res = client()
        .get(format!("{base}/v1/me"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let _ = tx.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(
        matches!(outcome, Ok(Ok(Ok(())))),
        "serve did not stop cleanly"
    );
}
