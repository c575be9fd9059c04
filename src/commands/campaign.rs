//! `forge campaign` / `forge campaign resume DIR`: the command line resolved into
//! [`Settings`] (every input checked before the campaign directory is written: the model,
//! the checkout clean and a git repository, the competitor's server, the proposals), saved
//! as `campaign.json`, then the engine's executor and the proposer built and handed to
//! [`crate::campaign::rounds::drive`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::runtime;
use crate::agent::llm::cost::{self, Meter};
use crate::agent::llm::http::{Client, RetryPolicy};
use crate::agent::llm::providers::{self, LlmSpec};
use crate::build::VllmPythonOnly;
use crate::campaign::gate::{self, GateRef};
use crate::campaign::llamacpp::LlamaCppExecutor;
use crate::campaign::propose;
use crate::campaign::rounds::{self, Agent, Proposer};
use crate::campaign::serve::Load;
use crate::campaign::settings::{Budget, LoadSettings, Settings, Target, smoke_prompts};
use crate::campaign::vllm::VllmExecutor;
use crate::cli::{CampaignAction, CampaignArgs, CampaignCli};
use crate::patch::git;
use crate::patch::series;
use crate::recipe::EngineKind;
use crate::store::RunLock;

/// Run `forge campaign`.
pub fn main(cli: CampaignCli) -> anyhow::Result<ExitCode> {
    let (dir, settings, _locks) = match cli.action {
        Some(CampaignAction::Resume { dir }) => {
            let s = Settings::load(&dir)?;
            let locks = lock(&dir, &s)?;
            eprintln!("forge campaign: resuming {}", dir.display());
            (dir, s, locks)
        }
        None => {
            let dir = absolute(&cli.args.dir)?;
            anyhow::ensure!(
                !dir.join(crate::campaign::settings::SETTINGS_FILE).exists(),
                "{} already holds a campaign; resume it with `forge campaign resume {}`",
                dir.display(),
                dir.display()
            );
            let s = resolve(&cli.args, &dir)?;
            std::fs::create_dir_all(&dir)?;
            let locks = lock(&dir, &s)?;
            s.save(&dir)?;
            eprintln!("forge campaign: new campaign {}", dir.display());
            (dir, s, locks)
        }
    };
    let spent = crate::campaign::ledger::Ledger::read(&dir)?.spent_usd();
    let mut proposer = proposer(&settings, spent)?;
    let stop = runtime(None)?.block_on(async {
        match settings.target {
            Target::Llamacpp => {
                let mut exec = llamacpp(&dir, &settings);
                rounds::drive(&dir, &settings, &mut exec, &mut proposer).await
            }
            Target::Vllm => {
                let mut exec = vllm(&dir, &settings)?;
                rounds::drive(&dir, &settings, &mut exec, &mut proposer).await
            }
        }
    })?;
    println!(
        "{}: {} — {}\nfinal report: {}",
        settings.target.name(),
        stop.code.as_str(),
        stop.reason,
        dir.join(crate::campaign::report::FINAL_REPORT_FILE)
            .display()
    );
    Ok(ExitCode::from(stop.code.exit_code()))
}

/// The competitor: read from the fair gate (`--compare`), or named by hand.
struct Competitor {
    leader: PathBuf,
    leader_args: Vec<String>,
    leader_name: String,
    leader_framework: Option<String>,
    gate: Option<GateRef>,
}

fn competitor(a: &CampaignArgs, dir: &Path) -> anyhow::Result<Competitor> {
    if let Some(compare) = &a.compare {
        anyhow::ensure!(
            a.target == Target::Vllm,
            "--compare: a gate compares GPU frameworks (--target vllm); a llama.cpp campaign names its competitor with --leader-server"
        );
        let g = gate::read(
            &absolute(compare)?,
            EngineKind::Vllm,
            a.scenario.as_deref(),
            dir,
        )?;
        let model = a.model.as_deref().map(|m| m.display().to_string());
        anyhow::ensure!(
            model.as_deref() == Some(g.model.as_str()),
            "--model {}: the gate in {} served `{}`; a gap is only measured on the same weights",
            model.unwrap_or_default(),
            g.dir.display(),
            g.model
        );
        let (program, args) = g
            .leader_argv
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("--compare: the leader's command is empty"))?;
        return Ok(Competitor {
            leader: PathBuf::from(program),
            leader_args: args.to_vec(),
            leader_name: a
                .leader_name
                .clone()
                .unwrap_or_else(|| format!("{} ({})", g.leader_framework, g.leader_candidate)),
            leader_framework: Some(g.leader_framework.clone()),
            gate: Some(g),
        });
    }
    let leader = a.leader_server.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "--leader-server (the competitor's server) or --compare (a fair gate) is required"
        )
    })?;
    anyhow::ensure!(
        leader.is_file(),
        "--leader-server {}: no such file",
        leader.display()
    );
    let leader_name = a.leader_name.clone().unwrap_or_else(|| match a.target {
        Target::Llamacpp => "llama.cpp (stock)".to_string(),
        Target::Vllm => leader
            .file_name()
            .map_or("the competitor".into(), |n| n.to_string_lossy().to_string()),
    });
    Ok(Competitor {
        leader: absolute(leader)?,
        leader_args: a.leader_args.clone(),
        leader_name,
        leader_framework: a
            .leader_framework
            .map(|f| crate::trace::framework_id(f).to_string()),
        gate: None,
    })
}

/// The settings of a new campaign, every input checked.
fn resolve(a: &CampaignArgs, dir: &Path) -> anyhow::Result<Settings> {
    let model = a
        .model
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--model is required for a new campaign"))?;
    let source = a
        .source
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--source (the engine's git checkout) is required"))?;
    let source = absolute(source)?;
    git::ensure_repo_and_clean(&source).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
    let head = git::head(&source)?;
    if let Some(at) = git::branch_commit(&source, &a.branch)?.filter(|at| *at != head) {
        anyhow::bail!(
            "--branch {}: the branch already exists in {} at {} (another campaign's?); \
             name a new one, or resume that campaign",
            a.branch,
            source.display(),
            git::short(&at)
        );
    }
    anyhow::ensure!(
        a.patches.is_some() || a.llm.is_some(),
        "where do patches come from? give --patches DIR (a series) or --llm provider/model"
    );
    if let Some(p) = &a.patches {
        series::list(p)?;
    }
    let rival = competitor(a, dir)?;
    let (model, python) = match a.target {
        Target::Llamacpp => {
            anyhow::ensure!(
                model.is_file(),
                "--model {}: no such GGUF file",
                model.display()
            );
            (absolute(model)?.display().to_string(), None)
        }
        Target::Vllm => {
            let python = a.python.as_deref().ok_or_else(|| {
                anyhow::anyhow!("--python (the interpreter of vLLM's environment) is required")
            })?;
            anyhow::ensure!(
                python.is_file(),
                "--python {}: no such file",
                python.display()
            );
            let m = if model.exists() {
                absolute(model)?.display().to_string()
            } else {
                model.display().to_string()
            };
            (m, Some(absolute(python)?))
        }
    };
    Ok(Settings {
        target: a.target,
        model,
        start_commit: head,
        source,
        branch: a.branch.clone(),
        build_dir: match &a.build_dir {
            Some(b) => absolute(b)?,
            None => dir.join("build"),
        },
        leader: rival.leader,
        leader_args: rival.leader_args,
        leader_name: rival.leader_name,
        leader_framework: rival.leader_framework,
        gate: rival.gate,
        python,
        uv: a.uv.as_deref().map(absolute).transpose()?,
        flow_check: a.flow_check,
        patches: a.patches.as_deref().map(absolute).transpose()?,
        llm: a.llm.clone(),
        llm_base_url: a.llm_base_url.clone(),
        attempts_per_round: a.attempts_per_round as u32,
        gap_pairs: a.gap_pairs,
        tie_threshold_pct: a.tie_threshold,
        load: load(a)?,
        budget: Budget {
            max_rounds: a.max_rounds,
            max_hours: a.max_hours,
            max_dollars: a.max_dollars,
            gpu_hour_usd: a.gpu_hour_usd,
        },
    })
}

/// The reference prompts and the measurement's shape.
fn load(a: &CampaignArgs) -> anyhow::Result<LoadSettings> {
    let (prompts, from) = match &a.workload {
        Some(w) => {
            let wl = crate::workload::load(w)?;
            let prompts: Vec<String> = wl
                .requests
                .iter()
                .take(a.prompts)
                .map(|r| r.input.as_prompt_text())
                .collect();
            anyhow::ensure!(
                !prompts.is_empty(),
                "--workload {}: no request",
                w.display()
            );
            (prompts, format!("the first requests of {}", w.display()))
        }
        None => (
            smoke_prompts(),
            "forge's built-in smoke prompts".to_string(),
        ),
    };
    Ok(LoadSettings {
        prompts,
        prompts_from: from,
        answer_tokens: a.answer_tokens as u32,
        concurrent: a.concurrent,
        output_tokens: a.output_tokens as u32,
    })
}

fn load_of(s: &Settings) -> Load {
    Load {
        prompts: s.load.prompts.clone(),
        answer_tokens: s.load.answer_tokens,
        concurrent: s.load.concurrent,
        output_tokens: s.load.output_tokens,
    }
}

fn llamacpp(dir: &Path, s: &Settings) -> LlamaCppExecutor {
    LlamaCppExecutor::new(&s.build_dir, dir, Path::new(&s.model), load_of(s)).with_leader(&s.leader)
}

fn vllm(dir: &Path, s: &Settings) -> anyhow::Result<VllmExecutor> {
    let python = s
        .python
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("campaign.json: a vLLM campaign names no python"))?;
    let builder = match &s.uv {
        Some(uv) => VllmPythonOnly::uv(python, uv),
        None => VllmPythonOnly::pip(python),
    };
    let mut leader = vec![s.leader.display().to_string()];
    leader.extend(s.leader_args.iter().cloned());
    let framework = s
        .leader_framework
        .as_deref()
        .map(|f| {
            <crate::trace::Framework as clap::ValueEnum>::from_str(f, true)
                .map_err(|e| anyhow::anyhow!("campaign.json: leader_framework: {e}"))
        })
        .transpose()?;
    let mut exec = VllmExecutor::new(builder, &s.source, dir, &s.model, load_of(s), leader)
        .with_leader_framework(framework);
    if let Some(g) = &s.gate {
        exec = exec.with_gate(g);
    }
    Ok(exec)
}

/// The proposer the settings call for.
fn proposer(s: &Settings, spent_usd: f64) -> anyhow::Result<Proposer> {
    if let Some(p) = &s.patches {
        return Ok(Proposer::Series(series::list(p)?));
    }
    let Some(llm) = &s.llm else {
        anyhow::bail!("campaign.json names neither a patch series nor an LLM");
    };
    let spec = LlmSpec::parse(llm, s.llm_base_url.as_deref())?;
    let env = |k: &str| std::env::var(k).ok();
    let key = providers::key_from_env(&spec, &env);
    anyhow::ensure!(
        key.is_some() || !spec.key_required,
        "--llm {llm}: no {} in the environment",
        spec.key_env.clone().unwrap_or_default()
    );
    let (price, _) = cost::resolve_price(&spec, None);
    let model = spec.label();
    let client = Client::new(spec, key, price, RetryPolicy::default())?;
    let limits = propose::Limits::default();
    Ok(Proposer::Llm(Box::new(Agent {
        client,
        meter: Meter::new(u32::MAX, s.budget.max_dollars, spent_usd),
        model,
        limits,
    })))
}

/// One process per campaign, and one campaign per checkout (the checkout's git directory
/// holds the second lock, so its tree stays clean).
fn lock(dir: &Path, s: &Settings) -> anyhow::Result<(RunLock, RunLock)> {
    let own = RunLock::acquire(dir)?;
    let checkout = RunLock::acquire(&git::git_dir(&s.source)?).map_err(|e| {
        anyhow::anyhow!(
            "{}: another campaign is patching it ({e})",
            s.source.display()
        )
    })?;
    Ok((own, checkout))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}
