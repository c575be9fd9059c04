//! One profile capture against a running server: `POST /start_profile`, a batch of
//! requests of one shape (prefill: input L → 1 output token; decode: 1 input token →
//! output L, end-of-sequence ignored), `POST /stop_profile`, then the traces the server
//! wrote, found by watching its profiler directory until new files stop growing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::trace::Stage;

/// The token id every synthetic prompt repeats (any id below every real vocabulary's size).
const PROMPT_TOKEN: u32 = 1000;

/// What one capture drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Prefill or decode.
    pub stage: Stage,
    /// Prompt tokens per request.
    pub input_len: u32,
    /// Output tokens per request.
    pub output_len: u32,
    /// Requests sent at once.
    pub batch: usize,
}

impl Shape {
    /// The capture for `stage` at a scenario's lengths (`input` → 1, or 1 → `output`).
    pub fn at(stage: Stage, input: u32, output: u32, batch: usize) -> Shape {
        let (input_len, output_len) = match stage {
            Stage::Prefill => (input, 1),
            _ => (1, output),
        };
        Shape {
            stage,
            input_len,
            output_len,
            batch,
        }
    }
}

/// The server to capture from.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The model name requests carry.
    pub model: String,
    /// The body of `/start_profile`, if the engine takes one.
    pub start_body: Option<Value>,
    /// Where the server writes its traces.
    pub trace_dir: PathBuf,
}

/// Why a capture produced no trace.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A profiler route refused.
    #[error("{route} answered {status}: {body}")]
    Route {
        /// The route.
        route: &'static str,
        /// HTTP status.
        status: u16,
        /// What it said (first 300 bytes).
        body: String,
    },
    /// The server could not be reached.
    #[error("{0}")]
    Http(String),
    /// Every request of the batch failed.
    #[error("every request of the {stage} capture failed; the first: {first}")]
    Requests {
        /// The stage.
        stage: Stage,
        /// The first failure.
        first: String,
    },
    /// No trace appeared.
    #[error("no new trace appeared in {} within {secs} s after /stop_profile", dir.display())]
    NoTrace {
        /// The directory watched.
        dir: PathBuf,
        /// How long.
        secs: u64,
    },
}

/// Run one capture; the new trace files, as the server wrote them.
pub async fn capture(
    client: &reqwest::Client,
    t: &Target,
    shape: Shape,
    wait: Duration,
) -> Result<Vec<PathBuf>, CaptureError> {
    let before = listing(&t.trace_dir);
    post(client, t, "/start_profile", t.start_body.clone()).await?;
    let sent = requests(client, t, shape).await;
    post(client, t, "/stop_profile", None).await?;
    sent?;
    new_traces(&t.trace_dir, &before, wait).await
}

async fn post(
    client: &reqwest::Client,
    t: &Target,
    route: &'static str,
    body: Option<Value>,
) -> Result<(), CaptureError> {
    let mut req = client.post(format!("{}{route}", t.base_url));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| CaptureError::Http(format!("{route}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(CaptureError::Route {
        route,
        status: status.as_u16(),
        body: text.chars().take(300).collect(),
    })
}

/// The batch, all at once; an error only when every request failed.
async fn requests(client: &reqwest::Client, t: &Target, s: Shape) -> Result<(), CaptureError> {
    let body = json!({
        "model": t.model,
        "prompt": vec![PROMPT_TOKEN; s.input_len as usize],
        "max_tokens": s.output_len,
        "temperature": 0,
        "ignore_eos": true,
        "stream": false,
    });
    let url = format!("{}/v1/completions", t.base_url);
    let calls = (0..s.batch.max(1)).map(|_| {
        let req = client.post(&url).json(&body);
        async move {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            if status.is_success() {
                Ok(())
            } else {
                let text = resp.text().await.unwrap_or_default();
                Err(format!(
                    "{status}: {}",
                    text.chars().take(200).collect::<String>()
                ))
            }
        }
    });
    let results = futures::future::join_all(calls).await;
    if results.iter().any(Result::is_ok) {
        return Ok(());
    }
    Err(CaptureError::Requests {
        stage: s.stage,
        first: results
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_default(),
    })
}

/// Trace files under `dir` (three levels deep) with their size and modification time.
fn listing(dir: &Path) -> HashMap<PathBuf, (u64, SystemTime)> {
    let mut out = HashMap::new();
    walk(dir, 3, &mut out);
    out
}

fn walk(dir: &Path, depth: usize, out: &mut HashMap<PathBuf, (u64, SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            if depth > 1 {
                walk(&p, depth - 1, out);
            }
            continue;
        }
        let name = e.file_name().to_string_lossy().to_lowercase();
        let trace =
            name.contains("trace") && (name.ends_with(".json") || name.ends_with(".json.gz"));
        if trace && !name.starts_with('.') {
            let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.insert(p, (meta.len(), when));
        }
    }
}

/// The traces new or changed since `before`, once they exist and have not grown for a
/// second (a server writes a large trace for a while after `/stop_profile` returns).
async fn new_traces(
    dir: &Path,
    before: &HashMap<PathBuf, (u64, SystemTime)>,
    wait: Duration,
) -> Result<Vec<PathBuf>, CaptureError> {
    let deadline = Instant::now() + wait;
    let mut last: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
    let mut stable_since = Instant::now();
    loop {
        let now: HashMap<PathBuf, (u64, SystemTime)> = listing(dir)
            .into_iter()
            .filter(|(p, v)| before.get(p) != Some(v))
            .collect();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if !last.is_empty() && stable_since.elapsed() >= Duration::from_secs(1) {
            let mut files: Vec<PathBuf> = last.into_keys().collect();
            files.sort();
            return Ok(files);
        }
        if Instant::now() >= deadline {
            return Err(CaptureError::NoTrace {
                dir: dir.to_path_buf(),
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[test]
    fn shapes_follow_the_contract() {
        assert_eq!(
            Shape::at(Stage::Prefill, 8000, 1000, 4),
            Shape {
                stage: Stage::Prefill,
                input_len: 8000,
                output_len: 1,
                batch: 4
            }
        );
        let d = Shape::at(Stage::Decode, 8000, 1000, 4);
        assert_eq!((d.input_len, d.output_len), (1, 1000));
    }

    #[tokio::test]
    async fn a_refused_start_is_an_error_with_the_servers_words() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/start_profile"))
            .respond_with(ResponseTemplate::new(404).set_body_string("{\"detail\":\"Not Found\"}"))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let t = Target {
            base_url: server.uri(),
            model: "m".into(),
            start_body: None,
            trace_dir: dir.path().to_path_buf(),
        };
        let e = capture(
            &reqwest::Client::new(),
            &t,
            Shape::at(Stage::Decode, 8, 8, 1),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/start_profile answered 404") && e.contains("Not Found"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_trace_written_after_stop_is_found() {
        let server = MockServer::start().await;
        for route in ["/start_profile", "/stop_profile", "/v1/completions"] {
            Mock::given(method("POST"))
                .and(path(route))
                .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
                .mount(&server)
                .await;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old.trace.json"), "[]").unwrap();
        let t = Target {
            base_url: server.uri(),
            model: "m".into(),
            start_body: Some(json!({"output_dir": "x"})),
            trace_dir: dir.path().to_path_buf(),
        };
        let d = dir.path().to_path_buf();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(d.join("host_1.123.pt.trace.json.gz"), "x").unwrap();
        });
        let got = capture(
            &reqwest::Client::new(),
            &t,
            Shape::at(Stage::Prefill, 16, 16, 2),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        writer.await.unwrap();
        assert_eq!(got, vec![dir.path().join("host_1.123.pt.trace.json.gz")]);
        let reqs = server.received_requests().await.unwrap();
        let completions: Vec<_> = reqs
            .iter()
            .filter(|r| r.url.path() == "/v1/completions")
            .collect();
        assert_eq!(completions.len(), 2);
        let body: Value = serde_json::from_slice(&completions[0].body).unwrap();
        assert_eq!(body["prompt"].as_array().unwrap().len(), 16);
        assert_eq!(body["max_tokens"], 1);
        let start = reqs
            .iter()
            .find(|r| r.url.path() == "/start_profile")
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&start.body).unwrap(),
            json!({"output_dir": "x"})
        );
    }
}
