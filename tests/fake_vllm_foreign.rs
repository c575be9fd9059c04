//! A server already listening on the engine's port (pinned with `FORGE_ENGINE_PORT`) is
//! detected as `foreign_server` and never benchmarked: it sees readiness probes, never a
//! completion request. The original forge benchmarked whatever answered on port 8000.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::run::{class, journal};
use common::sandbox::Sandbox;

/// Request lines a foreign server received (`GET /health`, ...).
type Seen = Arc<Mutex<Vec<String>>>;

/// What the foreign server lists in `/v1/models`.
#[derive(Clone)]
enum Lists {
    /// Another model.
    Other,
    /// The name forge's engine is launched with, read from its command line in /proc (as
    /// any local user can), i.e. an impersonation.
    ForgesName(String),
}

/// The `--served-model-name` of the engines carrying sandbox tag `tag`.
fn served_names(tag: &str) -> Vec<String> {
    common::procs::tagged(tag)
        .into_iter()
        .filter_map(|(_, cmd)| {
            let mut words = cmd.split(' ');
            words.find(|w| *w == "--served-model-name")?;
            words.next().map(str::to_string)
        })
        .collect()
}

/// An OpenAI-compatible server for another model, recording every request line.
fn foreign_server(speaks_openai: bool) -> (u16, Seen) {
    foreign_server_listing(speaks_openai, Lists::Other)
}

fn foreign_server_listing(speaks_openai: bool, lists: Lists) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            let lists = lists.clone();
            std::thread::spawn(move || answer(stream, &log, speaks_openai, &lists));
        }
    });
    (port, seen)
}

fn answer(stream: TcpStream, log: &Seen, speaks_openai: bool, lists: &Lists) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let request = line.trim().to_string();
    log.lock().unwrap().push(request.clone());
    // Skip the headers; the body (if any) is not needed.
    let mut header = String::new();
    while reader.read_line(&mut header).unwrap_or(0) > 2 {
        header.clear();
    }
    let ids = match lists {
        Lists::Other => vec!["someone-else/other-model".to_string()],
        Lists::ForgesName(tag) => served_names(tag),
    };
    let body = match request.split(' ').nth(1) {
        Some("/v1/models") => serde_json::json!({
            "object": "list",
            "data": ids.iter().map(|id| serde_json::json!({"id": id, "object": "model"})).collect::<Vec<_>>(),
        })
        .to_string(),
        Some(p) if p.contains("completions") => {
            r#"{"choices":[{"text":"fast","finish_reason":"length"}],"usage":{"completion_tokens":1}}"#.to_string()
        }
        _ => "{}".to_string(),
    };
    let status = if speaks_openai {
        "200 OK"
    } else {
        "404 Not Found"
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut out = stream;
    let _ = out.write_all(reply.as_bytes());
}

fn run_against(port: u16) -> (Sandbox, Vec<serde_json::Value>, String) {
    run_in(Sandbox::new(), port)
}

fn run_in(mut sb: Sandbox, port: u16) -> (Sandbox, Vec<serde_json::Value>, String) {
    sb.set("FORGE_ENGINE_PORT", &port.to_string());
    let mut forge = sb.tune_fake(&["--max-experiments", "3", "--boot-timeout", "10"]);
    // The baseline never reaches the engine: nothing measured, exit 3.
    let status = forge.wait(Duration::from_secs(90));
    assert_eq!(status.code(), Some(3), "{}", forge.stderr());
    sb.assert_nothing_survives();
    let rows = journal(&sb.run_dir());
    (sb, rows, forge.stderr())
}

fn completions(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("completions"))
        .cloned()
        .collect()
}

#[test]
fn an_openai_server_for_another_model_is_foreign_and_never_benchmarked() {
    let (port, seen) = foreign_server(true);
    let (sb, rows, err) = run_against(port);
    assert_eq!(rows.len(), 1, "{err}");
    assert_eq!(class(&rows[0]), Some("foreign_server"));
    let summary = rows[0]
        .pointer("/failure/summary")
        .unwrap()
        .as_str()
        .unwrap();
    assert!(summary.contains("someone-else/other-model"), "{summary}");
    assert!(
        err.contains("the baseline could not be measured (foreign_server"),
        "{err}"
    );
    // Probed (and retried once), never measured.
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r == "GET /health HTTP/1.1"),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r == "GET /v1/models HTTP/1.1"),
        "{requests:?}"
    );
    assert_eq!(completions(&seen), Vec::<String>::new());
    // forge's own launch record (the fake may be stopped before it logs anything).
    let pids = std::fs::read_to_string(sb.run_dir().join("engines.pids")).unwrap();
    assert_eq!(pids.lines().count(), 2, "first boot and its retry: {pids}");
}

#[test]
fn a_server_that_is_not_vllm_is_foreign_once_the_engine_cannot_bind() {
    // /health answers 404: never "ready", so forge waits; the engine then fails to bind
    // the port ("[Errno 98] ... address already in use") and that is what classifies it.
    let (port, seen) = foreign_server(false);
    let (_sb, rows, err) = run_against(port);
    assert_eq!(rows.len(), 1, "{err}");
    assert_eq!(class(&rows[0]), Some("foreign_server"), "{}", rows[0]);
    let summary = rows[0]
        .pointer("/failure/summary")
        .unwrap()
        .as_str()
        .unwrap();
    assert!(summary.contains("address already in use"), "{summary}");
    assert_eq!(completions(&seen), Vec::<String>::new());
}

#[test]
fn a_server_impersonating_the_engine_is_foreign_and_never_benchmarked() {
    // The squatter lists forge's own served name (read from the engine's command line, as
    // any local user can) while forge's engine cannot bind the port: what answers is not
    // the engine, so it is `foreign_server`, never a measurement.
    let sb = Sandbox::new();
    let (port, seen) = foreign_server_listing(true, Lists::ForgesName(sb.tag.clone()));
    let (_sb, rows, err) = run_in(sb, port);
    assert_eq!(rows.len(), 1, "{err}");
    assert_eq!(class(&rows[0]), Some("foreign_server"), "{}", rows[0]);
    assert!(
        rows[0].get("measurement").is_none_or(|m| m.is_null()),
        "{}",
        rows[0]
    );
    assert_eq!(completions(&seen), Vec::<String>::new());
    // The warning says why, without terminal colour codes in a file.
    assert!(err.contains("which predates the engine"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escape codes in a captured stderr: {err:?}"
    );
}
