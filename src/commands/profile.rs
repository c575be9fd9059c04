//! `forge profile`: the arguments resolved into a capture plan and a server — a campaign's
//! best deployment booted with its profiler on ([`crate::profile::campaign`]), or a running
//! server (`--base-url`, `--trace-dir`) — then captured, analyzed and summarized.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::runtime;
use crate::cli::ProfileArgs;
use crate::profile::capture::Target;
use crate::profile::{Plan, campaign};
use crate::recipe::EngineKind;
use crate::trace::Framework;

/// Prefill prompt length with `--base-url` and no `--input-len`.
const DEFAULT_INPUT: u32 = 1024;
/// Decode output length with `--base-url` and no `--output-len`.
const DEFAULT_OUTPUT: u32 = 256;

/// Run `forge profile`.
pub fn main(a: ProfileArgs) -> anyhow::Result<ExitCode> {
    let kind = EngineKind::parse(&a.framework)
        .filter(|k| *k != EngineKind::Llamacpp)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--framework: unknown framework `{}` (vllm, sglang, trtllm)",
                a.framework
            )
        })?;
    let layers = a
        .config
        .as_deref()
        .map(crate::trace::layers_in_config)
        .transpose()?;
    let rt = runtime(None)?;
    let (manifest, out) = match (&a.campaign, &a.base_url) {
        (Some(dir), _) => rt.block_on(from_campaign(&a, dir, kind, layers))?,
        (None, Some(url)) => rt.block_on(from_server(&a, url, kind, layers))?,
        (None, None) => anyhow::bail!("give --campaign DIR or --base-url URL"),
    };
    crate::term::print(&crate::profile::summary(&manifest, &out))?;
    let ok = manifest.stages.iter().filter(|s| s.error.is_none()).count();
    Ok(if ok == manifest.stages.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn framework(kind: EngineKind) -> Framework {
    match kind {
        EngineKind::Sglang => Framework::Sglang,
        EngineKind::Trtllm => Framework::Trtllm,
        _ => Framework::Vllm,
    }
}

async fn from_campaign(
    a: &ProfileArgs,
    dir: &Path,
    kind: EngineKind,
    layers: Option<usize>,
) -> anyhow::Result<(crate::profile::Manifest, PathBuf)> {
    let s = crate::compare::settings::load(dir)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| campaign::profiles_dir(dir, kind));
    std::fs::create_dir_all(&out)?;
    let c = tokio::task::block_in_place(|| {
        campaign::choose(&s, dir, kind, a.scenario.as_deref(), &out)
    })?;
    let plan = Plan {
        framework: framework(kind),
        input_len: a.input_len.unwrap_or(c.lengths.0),
        output_len: a.output_len.unwrap_or(c.lengths.1),
        batch: a.batch,
        wait: Duration::from_secs(a.wait_s as u64),
        layers,
        source: format!(
            "{} {} (campaign {}, scenario {})",
            kind.as_str(),
            c.candidate,
            dir.display(),
            c.scenario
        ),
    };
    match campaign::run(&c, &out, &plan).await {
        Ok(m) => Ok((m, out)),
        Err(e) => {
            // Nothing was captured: leave no empty directory behind.
            let _ = std::fs::remove_dir(&out);
            Err(e)
        }
    }
}

async fn from_server(
    a: &ProfileArgs,
    url: &str,
    kind: EngineKind,
    layers: Option<usize>,
) -> anyhow::Result<(crate::profile::Manifest, PathBuf)> {
    let trace_dir = a.trace_dir.clone().ok_or_else(|| {
        anyhow::anyhow!("--base-url needs --trace-dir (where the server writes its traces)")
    })?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("profiles").join(kind.as_str()));
    std::fs::create_dir_all(&out)?;
    let base_url = url.trim_end_matches('/').to_string();
    let model = match &a.model {
        Some(m) => m.clone(),
        None => first_model(&base_url).await?,
    };
    let start_body = match kind {
        EngineKind::Sglang => Some(crate::engine::sglang::profile_start_body(&trace_dir)),
        _ => None,
    };
    let plan = Plan {
        framework: framework(kind),
        input_len: a.input_len.unwrap_or(DEFAULT_INPUT),
        output_len: a.output_len.unwrap_or(DEFAULT_OUTPUT),
        batch: a.batch,
        wait: Duration::from_secs(a.wait_s as u64),
        layers,
        source: format!("{} at {base_url}", kind.as_str()),
    };
    let target = Target {
        base_url,
        model,
        start_body,
        trace_dir,
    };
    let m = crate::profile::run(&target, &out, &plan).await?;
    Ok((m, out))
}

/// The first model a server lists.
async fn first_model(base_url: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = reqwest::get(format!("{base_url}/v1/models"))
        .await
        .map_err(|e| anyhow::anyhow!("{base_url}/v1/models: {e}"))?
        .json()
        .await
        .map_err(|e| anyhow::anyhow!("{base_url}/v1/models: {e}"))?;
    v["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{base_url}/v1/models lists no model; give --model"))
}
