//! `forge doctor` end to end: the real binary, with a `PATH` holding only fake
//! `nvidia-smi`/`rocm-smi`/engine scripts that print recorded outputs from
//! `tests/fixtures/hardware/`, and NVML pointed at a library that does not exist. Output
//! is snapshot-tested with temp paths and free-space figures filtered.
//!
//! The fake `vllm --version` prints a bare version string; no recording of it was found
//! (vLLM's CLI prints `importlib.metadata.version('vllm')`), so that answer is assumed.

mod common;

use std::path::{Path, PathBuf};

use common::bin::{forge, run};
use common::run::fixture;

const SECRET: &str = "zq-SECRET-value-9f8e7d6c5b4a";

struct Machine {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let nvml = dir.path().join("lib/libnvidia-ml.so.1");
        Machine {
            env: vec![
                ("PATH".into(), dir.path().join("bin").display().to_string()),
                ("FORGE_NVML_LIB".into(), nvml.display().to_string()),
            ],
            dir,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn tool(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.root().join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A fake nvidia-smi printing a recorded file (and exiting with `code`).
    fn nvidia_smi(&self, name: &str, code: i32) {
        let f = fixture("hardware/nvidia-smi").join(name);
        self.tool(
            "nvidia-smi",
            &format!("/bin/cat '{}'; exit {code}", f.display()),
        );
    }

    fn set(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Run `forge doctor ARGS --run-dir <tmp>/.forge --min-free-gib 0`.
    fn doctor(&self, args: &[&str]) -> (i32, String, String) {
        let run_dir = self.root().join(".forge");
        let out = run(forge(&["doctor"])
            .args(args)
            .arg("--run-dir")
            .arg(&run_dir)
            .args(["--min-free-gib", "0"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v))));
        (out.code, out.stdout, out.stderr)
    }

    fn snapshot(&self, name: &str, args: &[&str]) -> i32 {
        let (code, out, err) = self.doctor(args);
        assert_eq!(err, "", "stderr");
        let root = regex_escape(&self.root().display().to_string());
        insta::with_settings!({filters => vec![
            (root.as_str(), "[TMP]"),
            (r"\d+\.\d GiB free", "[N] GiB free"),
            (r"--device cpu: .*; no GPU needed", "--device cpu: [HOST FACTS]; no GPU needed"),
        ]}, {
            insta::assert_snapshot!(name, format!("exit {code}\n{out}"));
        });
        code
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn a_ready_four_a100_box() {
    let m = Machine::new().set("ANTHROPIC_API_KEY", SECRET);
    m.nvidia_smi("a100-sxm4-80gb-x4_580.105.08.csv", 0);
    m.tool("vllm", "[ \"$1\" = --version ] && echo 0.10.2");
    assert_eq!(m.snapshot("ready_a100_box", &[]), 0);
}

#[test]
fn no_driver_no_engine_no_key() {
    let m = Machine::new();
    m.nvidia_smi("error-driver-unreachable.txt", 9);
    assert_eq!(m.snapshot("no_driver_no_engine_no_key", &[]), 1);
}

#[test]
fn mixed_gpus_with_llama_server_and_a_local_llm() {
    let m = Machine::new();
    m.nvidia_smi("titanv-rtx5880-mixed_570.86.15.csv", 0);
    let v = fixture("hardware/engines/llama-server-version_0.5.0-dev.stderr");
    m.tool("llama-server", &format!("/bin/cat '{}' >&2", v.display()));
    let args = ["--engine", "llamacpp", "--llm", "ollama/qwen3:8b"];
    assert_eq!(m.snapshot("mixed_gpus_llamacpp", &args), 0);
}

#[test]
fn cuda_visible_devices_hiding_every_gpu_fails() {
    let m = Machine::new()
        .set("CUDA_VISIBLE_DEVICES", "-1")
        .set("OPENAI_API_KEY", SECRET);
    m.nvidia_smi("a100-sxm4-80gb-x4_580.105.08.csv", 0);
    m.tool("vllm", "echo 0.10.2");
    assert_eq!(m.snapshot("all_gpus_hidden", &["--llm", "openai/gpt-5"]), 1);
}

#[test]
fn rocm_driver_not_loaded_while_rocm_smi_exits_0() {
    let m = Machine::new().set("MISTRAL_API_KEY", SECRET);
    let e = fixture("hardware/rocm-smi/error-driver-not-initialized.stderr");
    m.tool(
        "rocm-smi",
        &format!("/bin/cat '{}' >&2; exit 0", e.display()),
    );
    m.tool("vllm", "echo 0.10.2");
    let args = ["--device", "rocm", "--llm", "mistral/mistral-large"];
    assert_eq!(m.snapshot("rocm_driver_not_loaded", &args), 1);
}

#[test]
fn cpu_device_needs_no_gpu() {
    let m = Machine::new();
    m.tool("vllm", "echo 0.10.2");
    let args = ["--device", "cpu", "--llm", "lmstudio/qwen3"];
    assert_eq!(m.snapshot("cpu_device", &args), 0);
}

#[test]
fn a_broken_engine_install_fails_with_its_last_line() {
    let m = Machine::new().set("ANTHROPIC_API_KEY", SECRET);
    m.nvidia_smi("t4_580.126.20.csv", 0);
    m.tool(
        "python3",
        "echo 'Traceback (most recent call last):' >&2; \
         echo \"ModuleNotFoundError: No module named 'vllm'\" >&2; exit 1",
    );
    let args = ["--engine-cmd", "python3 -m vllm.entrypoints.cli.main"];
    assert_eq!(m.snapshot("broken_engine", &args), 1);
}

#[test]
fn engine_cmd_is_argv_not_a_shell_string() {
    let m = Machine::new();
    m.nvidia_smi("t4_580.126.20.csv", 0);
    // Prints 0.10.2 only when called with exactly these three arguments.
    m.tool(
        "launcher",
        "[ $# -eq 3 ] && [ \"$1\" = '-m' ] && [ \"$2\" = 'a;b' ] && [ \"$3\" = --version ] && echo 0.10.2",
    );
    let (_, out, _) = m.doctor(&["--engine-cmd", "launcher -m a;b"]);
    let engine = out.lines().next().unwrap();
    assert!(
        engine.starts_with("ok    engine   vllm 0.10.2 at "),
        "{out}"
    );
}

#[test]
fn sglang_and_trtllm_are_asked_their_version_their_own_way() {
    let m = Machine::new();
    m.nvidia_smi("t4_580.126.20.csv", 0);
    // Neither has --version: `sglang version`, and trtllm-serve's import banner.
    m.tool(
        "sglang",
        "[ \"$1\" = version ] && { echo 'sglang version: 0.5.23'; echo 'git revision: 1a2b'; }",
    );
    m.tool(
        "trtllm-serve",
        "[ \"$1\" = --help ] && { echo '[TensorRT-LLM] TensorRT LLM version: 1.2.0'; echo 'Usage: trtllm-serve [OPTIONS] COMMAND [ARGS]...'; }",
    );
    let (_, out, _) = m.doctor(&["--engine", "sglang"]);
    let engine = out.lines().next().unwrap();
    assert!(
        engine.starts_with("ok    engine   sglang 0.5.23 at "),
        "{out}"
    );
    let (_, out, _) = m.doctor(&["--engine", "trtllm"]);
    let engine = out.lines().next().unwrap();
    assert!(
        engine.starts_with("ok    engine   trtllm-serve 1.2.0 at "),
        "{out}"
    );
}

#[test]
fn the_api_key_value_never_appears() {
    let mut m = Machine::new();
    for var in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "TOGETHER_API_KEY",
        "GROQ_API_KEY",
        "FIREWORKS_API_KEY",
        "DEEPINFRA_API_KEY",
        "MISTRAL_API_KEY",
    ] {
        m = m.set(var, SECRET);
    }
    m.nvidia_smi("a100-sxm4-80gb-x4_580.105.08.csv", 0);
    let providers = [
        "anthropic",
        "openai",
        "openrouter",
        "together",
        "groq",
        "fireworks",
        "deepinfra",
        "mistral",
        "nope",
    ];
    for p in providers {
        let (_, out, err) = m.doctor(&["--llm", &format!("{p}/some-model")]);
        let text = format!("{out}{err}");
        for len in 5..=SECRET.len() {
            for start in 0..=SECRET.len() - len {
                let part = &SECRET[start..start + len];
                assert!(!text.contains(part), "{p}: `{part}` of the key in:\n{text}");
            }
        }
        if p != "nope" {
            assert!(text.contains("_API_KEY is set"), "{text}");
        }
    }
}
