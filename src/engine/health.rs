//! Readiness: the process is alive, `GET /health` answers 200, and `GET /v1/models` lists
//! the name we served the model under. Anything else answering on the port is a foreign
//! server and is never benchmarked. An early exit is noticed at once.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::ServerProcess;

/// How waiting for readiness ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// Ready to measure.
    Ready {
        /// Seconds from spawn to ready.
        boot_s: f64,
    },
    /// The process exited first.
    Exited {
        /// Exit code, if any.
        code: Option<i32>,
        /// Terminating signal, if any.
        signal: Option<i32>,
    },
    /// Still not ready at the deadline.
    Timeout,
    /// A server answered, but it is not ours (its model list).
    Foreign {
        /// The ids it listed.
        models: Vec<String>,
    },
}

/// Poll `base_url` until ready, the process exits, or `timeout` passes.
pub async fn wait_ready(
    proc: &mut ServerProcess,
    client: &reqwest::Client,
    base_url: &str,
    served_name: &str,
    timeout: Duration,
) -> Readiness {
    let deadline = Instant::now() + timeout;
    let mut poll = Duration::from_millis(20);
    loop {
        if let Some(status) = proc.try_exit() {
            use std::os::unix::process::ExitStatusExt;
            return Readiness::Exited {
                code: status.code(),
                signal: status.signal(),
            };
        }
        match probe(client, base_url, served_name).await {
            Probe::Ours => {
                return Readiness::Ready {
                    boot_s: proc.started.elapsed().as_secs_f64(),
                };
            }
            Probe::Foreign(models) => return Readiness::Foreign { models },
            Probe::NotYet => {}
        }
        if Instant::now() >= deadline {
            return Readiness::Timeout;
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(Duration::from_millis(250));
    }
}

enum Probe {
    Ours,
    Foreign(Vec<String>),
    NotYet,
}

async fn probe(client: &reqwest::Client, base_url: &str, served_name: &str) -> Probe {
    let health = client
        .get(format!("{base_url}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match health {
        Ok(r) if r.status().is_success() => {}
        _ => return Probe::NotYet,
    }
    match list_models(client, base_url).await {
        Some(ids) if ids.iter().any(|id| id == served_name) => Probe::Ours,
        Some(ids) => Probe::Foreign(ids),
        None => Probe::Foreign(Vec::new()),
    }
}

/// Model ids from `GET /v1/models` (`data[].id`), if the endpoint answers with that shape.
pub async fn list_models(client: &reqwest::Client, base_url: &str) -> Option<Vec<String>> {
    let r = client
        .get(format!("{base_url}/v1/models"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    Some(
        v.get("data")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
    )
}

/// Environment variable that fixes the port engines are started on (tests pre-place a
/// foreign server there); unset, every boot gets a free port.
pub const PORT_ENV: &str = "FORGE_ENGINE_PORT";

/// The port for the next engine: `$FORGE_ENGINE_PORT` when set, else a free one.
pub fn engine_port() -> std::io::Result<u16> {
    match std::env::var(PORT_ENV) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("{PORT_ENV}={v}: not a port number"))),
        Err(_) => free_port(),
    }
}

/// A free TCP port on 127.0.0.1 (bind port 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::process::{LaunchSpec, spawn};

    async fn fake_server(models: &'static str) -> String {
        use axum::{Router, routing::get};
        let app = Router::new()
            .route("/health", get(|| async { "" }))
            .route("/v1/models", get(move || async move { models }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn sleeper(dir: &std::path::Path, script: &str) -> ServerProcess {
        spawn(&LaunchSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            log_path: dir.join("log"),
            files: Vec::new(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn ours_foreign_exit_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let client = reqwest::Client::new();
        let url = fake_server(r#"{"data":[{"id":"forge-1"}]}"#).await;
        let mut p = sleeper(dir.path(), "sleep 30");
        let r = wait_ready(&mut p, &client, &url, "forge-1", Duration::from_secs(5)).await;
        assert!(matches!(r, Readiness::Ready { .. }), "{r:?}");
        let r = wait_ready(&mut p, &client, &url, "forge-2", Duration::from_secs(5)).await;
        assert_eq!(
            r,
            Readiness::Foreign {
                models: vec!["forge-1".into()]
            }
        );
        p.stop(Duration::from_millis(100)).await;

        let port = free_port().unwrap();
        let dead = format!("http://127.0.0.1:{port}");
        let mut p = sleeper(dir.path(), "exit 3");
        let r = wait_ready(&mut p, &client, &dead, "x", Duration::from_secs(5)).await;
        assert_eq!(
            r,
            Readiness::Exited {
                code: Some(3),
                signal: None
            }
        );
        let mut p = sleeper(dir.path(), "sleep 30");
        let r = wait_ready(&mut p, &client, &dead, "x", Duration::from_millis(300)).await;
        assert_eq!(r, Readiness::Timeout);
        p.stop(Duration::from_millis(100)).await;
    }
}
