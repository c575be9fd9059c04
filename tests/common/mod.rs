//! Helpers shared by the integration tests, included by `mod common;` at the top of each
//! test file that needs them (cargo does not build `tests/common/mod.rs` as a test of its
//! own). What lives where:
//!
//! - `bin`: the one builder of a `forge` command (binary path, no API keys or
//!   `LLAMA_ARG_*` in its environment, stdin from `/dev/null`, optionally in a process group
//!   of its own), running it to completion, or in the background with its output in files.
//! - `compare`: a fair gate without a GPU (a synthetic workload, a dry-run `forge compare`).
//! - `procs`: what runs on this machine: `/proc` scans (by environment tag, by process
//!   group), `alive`, a free loopback port, and `wait_until`, the one polling loop every
//!   other wait builds on.
//! - `sandbox`: one test's temporary store and unique tag; everything started from it
//!   carries the tag, and whatever still carries it when the sandbox drops is SIGKILLed.
//! - `run`: reading a run (the journal, failure classes, run directories) and the inputs
//!   tests give one (fixtures, workloads).
//! - `sim_proc`: `forge sim serve` as a child process: spawn, follow its output, readiness,
//!   SSE helpers, output normalization.
//! - `fake_engine`: an engine whose checkout is a git repository and whose speed and
//!   answers a diff changes (campaign tests).
//! - `git`: git by argv for tests (a throwaway identity, no system config).
//! - `hub`: Hugging Face Hub test data (a real model's published `config.json`).
//! - `fake_openai`: a scriptable OpenAI-compatible server for `forge bench`.
//! - `llamacpp`: the real llama.cpp peers (llama-server and a small GGUF), or a loud skip.
//! - `openai_py`: a Python with the official `openai` SDK, or a loud skip.
//! - `llm_ctx`, `llm_mock`: agent contexts and a scripted LLM provider for agent tests.
//!
//! Each test binary uses a subset, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod bin;
pub mod compare;
pub mod fake_engine;
pub mod fake_openai;
pub mod git;
pub mod hub;
pub mod llamacpp;
pub mod llm_ctx;
pub mod llm_mock;
pub mod openai_py;
pub mod procs;
pub mod run;
pub mod sandbox;
pub mod sim_proc;
