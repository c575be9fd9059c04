//! The simulator's OpenAI API through the official `openai` Python SDK: `forge sim serve`
//! runs, `tests/openai_sdk.py` checks `n`, `stop`, `logprobs`, `echo`, vLLM's 400s, the
//! simulator's refusals and `/tokenize`/`/detokenize` against it. Without the SDK the test
//! skips loudly (or fails under `FORGE_REQUIRE_OPENAI=1`, as `scripts/test.sh` sets).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::llamacpp::wait_with_deadline;
use common::openai_py;
use common::sim_proc::serve;

#[test]
fn the_openai_python_sdk_sees_vllms_api() {
    let Some(python) = openai_py::python("the_openai_python_sdk_sees_vllms_api") else {
        return;
    };
    let mut server = serve(&[]);
    let port = server.ready();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let out_path = std::env::temp_dir().join(format!("forge-openai-sdk-{port}.log"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(&python)
        .arg(script)
        .arg("--base-url")
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("run tests/openai_sdk.py");
    let status = wait_with_deadline(&mut child, Duration::from_secs(300));
    let log = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(
        status.is_some_and(|s| s.success()),
        "tests/openai_sdk.py failed ({status:?}):\n{log}\nserver stdout:\n{}",
        server.stdout()
    );
    assert!(!log.contains("FAIL"), "{log}");
    assert!(log.contains("checks ok"), "{log}");
}
