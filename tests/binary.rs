//! The real server binary: configuration errors at start-up, and graceful shutdown.

mod common;

use common::TestEnv;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_personalify");

/// Run the binary with exactly `vars` (no inherited environment, no .env file nearby).
fn command(vars: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(std::env::temp_dir())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null());
    cmd
}

fn valid_vars(env: &TestEnv) -> Vec<(&'static str, String)> {
    [
        "DATABASE_URL",
        "ANALYTICS_DATABASE_URL",
        "MONGODB_URL",
        "MONGODB_DATABASE",
        "REDIS_URL",
        "LEPTOS_SITE_ADDR",
    ]
    .into_iter()
    .map(|k| (k, env.vars[k].clone()))
    .collect()
}

fn assert_config_error(vars: Vec<(&'static str, String)>, variable: &str, secret: Option<&str>) {
    let out = command(&vars).output().expect("binary runs");
    assert_eq!(out.status.code(), Some(2), "exit status for {variable}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(
        lines[0].starts_with(&format!("personalify: configuration error: {variable}: ")),
        "{stderr}"
    );
    if let Some(secret) = secret {
        assert!(!stderr.contains(secret), "value printed: {stderr}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[tokio::test]
async fn malformed_redis_url_stops_the_server_naming_the_variable() {
    let env = TestEnv::new().await;
    let mut vars = valid_vars(&env);
    vars.retain(|(k, _)| *k != "REDIS_URL");
    vars.push(("REDIS_URL", "not-a-url".into()));
    assert_config_error(vars, "REDIS_URL", Some("not-a-url"));
}

#[tokio::test]
async fn each_missing_required_variable_stops_the_server_naming_it() {
    let env = TestEnv::new().await;
    for missing in [
        "DATABASE_URL",
        "ANALYTICS_DATABASE_URL",
        "MONGODB_URL",
        "REDIS_URL",
    ] {
        let mut vars = valid_vars(&env);
        vars.retain(|(k, _)| *k != missing);
        assert_config_error(vars, missing, None);
    }
}

#[tokio::test]
async fn a_malformed_database_url_is_named_and_its_password_not_printed() {
    let env = TestEnv::new().await;
    let mut vars = valid_vars(&env);
    vars.retain(|(k, _)| *k != "DATABASE_URL");
    vars.push(("DATABASE_URL", "mysql://root:hunter2@127.0.0.1/db".into()));
    assert_config_error(vars, "DATABASE_URL", Some("hunter2"));
}

#[tokio::test]
async fn sigterm_shuts_the_server_down_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    let mut child = command(&valid_vars(&env))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("SHUTDOWN_TIMEOUT_SECS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");

    // Wait for the "listening" line, which carries the address.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server logs that it is listening");
        let json: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if let Some(addr) = json["fields"]["addr"].as_str() {
            break addr.to_string();
        }
    };
    let http = reqwest::Client::new();
    let res = http
        .get(format!("http://{addr}/healthz"))
        .header("x-request-id", "probe-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-request-id"],
        "probe-4711",
        "the id is echoed"
    );
    let minted = http
        .get(format!("http://{addr}/healthz"))
        .header("x-request-id", "no spaces allowed")
        .send()
        .await
        .unwrap();
    let minted = minted.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        minted.len() == 16 && minted != "no spaces allowed",
        "{minted}"
    );

    // The binary supervises its background tasks and shows them.
    let ready: serde_json::Value = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tasks = ready["tasks"].as_array().expect("tasks listed").clone();
    for name in ["outbox", "scheduler"] {
        assert!(
            tasks
                .iter()
                .any(|t| t["name"] == name && t["running"] == true && t["restarts"] == 0),
            "{name} running: {tasks:?}"
        );
    }
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("personalify_http_requests_total{route=\"/healthz\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("personalify_task_up{task=\"outbox\"} 1"),
        "{metrics}"
    );

    // A keep-alive connection left idle, and a request whose head never ends: neither holds
    // the shutdown past SHUTDOWN_TIMEOUT_SECS (2 s).
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0_u8; 512];
    assert!(
        idle.read(&mut buf).await.unwrap() > 0,
        "answered, kept open"
    );
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(6),
        "stopped at its shutdown deadline, not the header timeout ({:?})",
        stopping.elapsed()
    );
    drop((idle, half));
    // The child has exited, so its stdout reaches EOF and the reader thread ends.
    let rest: Vec<String> = rx.iter().collect();
    // One access-log line per request, carrying its id, status and no query string.
    assert!(
        rest.iter().any(|l| l.contains("probe-4711")
            && l.contains("\"status\":200")
            && l.contains("\"message\":\"request\"")),
        "access log line with the request id: {rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received")),
        "shutdown logged: {rest:?}"
    );
    assert!(reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err());
}
