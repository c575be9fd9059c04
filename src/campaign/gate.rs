//! The fair gate a campaign starts from (`forge campaign --compare DIR`): a `forge compare`
//! campaign whose `forge gap --target` decided, per scenario, the target's best deployment
//! against the best rival's. The campaign takes the scenario where the target stands worst,
//! the rival's launch command exactly as the gate booted it (the same launcher, every
//! value through that framework's allowlist and its installed version's help, `{port}` for
//! the port), and the target's own winning serving flags, so each round measures the tuned
//! target against the tuned leader — never a competitor's defaults. The gate's table of
//! each framework's best goes into the final report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::serve::SERVED;
use crate::compare::candidate::{Candidate, best_per_framework};
use crate::compare::gap::Gap;
use crate::compare::search::{self, Searched};
use crate::compare::settings::CompareSettings;
use crate::compare::standing::{GAP_FILE, GapFile, ScenarioGap};
use crate::engine::deploy::{Target, render};
use crate::engine::process::LaunchSpec;
use crate::recipe::{EngineKind, Recipe};

/// What a campaign took from its gate (kept in `campaign.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRef {
    /// The compare campaign's directory.
    pub dir: PathBuf,
    /// The scenario the campaign closes the gap on.
    pub scenario: String,
    /// The model every framework served in the gate.
    pub model: String,
    /// The gate's decision there, in words.
    pub decision: String,
    /// The target's best candidate there (`None`: none met the SLA; the target's defaults).
    pub target_candidate: Option<String>,
    /// The leader's framework and candidate.
    pub leader_framework: String,
    /// Its candidate id.
    pub leader_candidate: String,
    /// The target's serving flags from its best candidate (after the model).
    pub target_args: Vec<String>,
    /// The environment those flags need (`NAME`, `value`).
    pub target_env: Vec<(String, String)>,
    /// The leader's launch command (`{port}` for its port), and its environment.
    pub leader_argv: Vec<String>,
    /// Its environment.
    pub leader_env: Vec<(String, String)>,
    /// Files it reads (trtllm-serve's YAML), written before each boot: (path, content).
    pub leader_files: Vec<(PathBuf, String)>,
    /// The model name the leader answers to.
    pub leader_served: String,
    /// The gate's table of each framework's best in the scenario (Markdown).
    pub table: String,
}

/// Read the gate in `dir` for `target` (`scenario`: the one to close, default the worst);
/// the leader's files (trtllm's YAML) will live in the campaign directory `campaign`.
/// Nothing is written.
pub fn read(
    dir: &Path,
    target: EngineKind,
    scenario: Option<&str>,
    campaign: &Path,
) -> anyhow::Result<GateRef> {
    let s = crate::compare::settings::load(dir)?;
    let gap = read_gap(dir, target)?;
    let sc = pick(&gap, scenario)?;
    let leader_fw = sc.leader_framework.clone().unwrap_or_default();
    let leader_id = sc.leader_candidate.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "--compare {}: no rival met the SLA in `{}`: there is no leader to close on",
            dir.display(),
            sc.scenario
        )
    })?;
    let leader_kind = EngineKind::parse(&leader_fw)
        .ok_or_else(|| anyhow::anyhow!("{GAP_FILE}: unknown framework `{leader_fw}`"))?;
    let leader_search = search::load(&s, dir, leader_kind)?;
    let leader = recipe_of(&leader_search, &leader_id)?;
    let gate_dir = crate::compare::gate::gate_dir(dir, leader_kind);
    let (leader_argv, leader_env, leader_files, leader_served) =
        leader_command(&leader_search, leader, &gate_dir, campaign)?;
    let (target_args, target_env) = match &sc.target_candidate {
        Some(id) => {
            let found = search::load(&s, dir, target)?;
            let gd = crate::compare::gate::gate_dir(dir, target);
            let engine = crate::tune::launch::engine_of(&found.settings, &gd)?;
            target_flags(recipe_of(&found, id)?, engine.vllm_version())?
        }
        None => (Vec::new(), Vec::new()),
    };
    let (rows, _) = crate::compare::gate::done(dir)?;
    Ok(GateRef {
        dir: dir.to_path_buf(),
        scenario: sc.scenario.clone(),
        model: s.model.clone(),
        decision: sc.gap.describe(),
        target_candidate: sc.target_candidate.clone(),
        leader_framework: leader_fw,
        leader_candidate: leader_id,
        target_args,
        target_env,
        leader_argv,
        leader_env,
        leader_files,
        leader_served,
        table: table(&s, &rows, &sc.scenario),
    })
}

fn read_gap(dir: &Path, target: EngineKind) -> anyhow::Result<GapFile> {
    let path = dir.join(GAP_FILE);
    let text = crate::text::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "--compare {}: no gate decision ({e}); run `forge gap --campaign {} --target {}` first",
            dir.display(),
            dir.display(),
            target.as_str()
        )
    })?;
    let gap: GapFile = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    anyhow::ensure!(
        gap.target == target.as_str(),
        "{}: the gate decided for `{}`, not `{}`; run `forge gap --campaign {} --target {}`",
        path.display(),
        gap.target,
        target.as_str(),
        dir.display(),
        target.as_str()
    );
    Ok(gap)
}

/// How far behind a decision leaves the target (lower = worse); `None`: nothing to close.
fn behind_rank(g: &Gap) -> Option<f64> {
    match g {
        Gap::TargetFailsSla => Some(f64::NEG_INFINITY),
        Gap::Behind { interval } | Gap::Unresolved { interval } => Some(interval.gain_pct),
        Gap::Ahead { .. } | Gap::Tied { .. } | Gap::OnlyTargetPasses | Gap::NobodyPasses => None,
    }
}

/// The scenario named, or the one where the target stands worst.
fn pick<'a>(gap: &'a GapFile, scenario: Option<&str>) -> anyhow::Result<&'a ScenarioGap> {
    if let Some(name) = scenario {
        let sc = gap
            .scenarios
            .iter()
            .find(|s| s.scenario == name)
            .ok_or_else(|| {
                let names: Vec<&str> = gap.scenarios.iter().map(|s| s.scenario.as_str()).collect();
                anyhow::anyhow!(
                    "--scenario {name}: not a scenario of the gate ({})",
                    names.join(", ")
                )
            })?;
        anyhow::ensure!(
            behind_rank(&sc.gap).is_some(),
            "--scenario {name}: the gate found {} {} there: nothing to close",
            gap.target,
            sc.gap.describe()
        );
        return Ok(sc);
    }
    gap.scenarios
        .iter()
        .filter_map(|s| Some((behind_rank(&s.gap)?, s)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, s)| s)
        .ok_or_else(|| {
            let said: Vec<String> = gap
                .scenarios
                .iter()
                .map(|s| format!("{}: {}", s.scenario, s.gap.describe()))
                .collect();
            anyhow::anyhow!(
                "the gate found {} not behind in any scenario ({}): nothing to close",
                gap.target,
                said.join("; ")
            )
        })
}

fn recipe_of<'a>(found: &'a Searched, id: &str) -> anyhow::Result<&'a Recipe> {
    found
        .picks
        .iter()
        .find(|p| p.id == id)
        .map(|p| &p.recipe)
        .ok_or_else(|| anyhow::anyhow!("{id}: not among its search's candidates"))
}

/// Environment variables, `(name, value)`.
type Env = Vec<(String, String)>;

/// A launch command: argv, environment, files it reads, and the model name it serves.
type Command = (Vec<String>, Env, Vec<(PathBuf, String)>, String);

/// The leader's command as the gate booted it (its engine read from the gate's directory
/// `gate_dir`), serving the campaign's model name: rendered at two ports, every word that
/// differs becomes `{port}`. The files it reads belong in `campaign`.
fn leader_command(
    found: &Searched,
    recipe: &Recipe,
    gate_dir: &Path,
    campaign: &Path,
) -> anyhow::Result<Command> {
    let engine = crate::tune::launch::engine_of(&found.settings, gate_dir)?;
    let log = campaign.join("leader.log");
    let served = engine.served_name(recipe, SERVED);
    let spec = |port| {
        engine
            .launch_spec(recipe, port, &served, &log, 0)
            .map_err(|e| anyhow::anyhow!("the leader's recipe: {e}"))
    };
    let (a, b): (LaunchSpec, LaunchSpec) = (spec(41001)?, spec(41002)?);
    let mut argv = vec![a.program.display().to_string()];
    argv.extend(a.args.iter().zip(&b.args).map(|(x, y)| {
        if x == y {
            x.clone()
        } else {
            x.replace("41001", "{port}")
        }
    }));
    Ok((argv, a.env, a.files, served))
}

/// The target's serving flags from its best recipe (the words after the model in its
/// deploy command for the vLLM `version` the gate ran, without host and port), and the
/// environment they need.
fn target_flags(
    recipe: &Recipe,
    version: Option<(u32, u32, u32)>,
) -> anyhow::Result<(Vec<String>, Env)> {
    let version = match version {
        Some((a, b, c)) => format!("{a}.{b}.{c}"),
        None => crate::engine::vllm::flags::Version::CURRENT.to_string(),
    };
    let d = render(
        recipe,
        &Target {
            host: "127.0.0.1",
            port: 8000,
            vllm_version: &version,
            source: "the gate's target recipe",
        },
    )?;
    let model = recipe.quant.checkpoint.as_deref().unwrap_or(&recipe.model);
    let after = d
        .argv
        .iter()
        .position(|w| w == model)
        .map_or(d.argv.len(), |i| i + 1);
    let mut out = Vec::new();
    let mut words = d.argv[after..].iter();
    while let Some(w) = words.next() {
        if w == "--host" || w == "--port" {
            words.next();
        } else {
            out.push(w.clone());
        }
    }
    Ok((out, d.env))
}

/// The gate's table: each framework's best in `scenario`, SLA-passing first.
fn table(s: &CompareSettings, rows: &[Candidate], scenario: &str) -> String {
    let mut t = String::from(
        "| Framework | Candidate | SLA | Request/s | Output tok/s | Server command |\n|---|---|---|---|---|---|\n",
    );
    for c in best_per_framework(rows, scenario, false) {
        let num = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.2}"));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | `{}` |",
            c.framework,
            c.candidate_id,
            if c.sla.passed { "met" } else { "missed" },
            num(c.metrics.request_throughput),
            num(c.metrics.output_token_throughput),
            c.server_command.replace('|', "\\|").replace('\n', " ")
        );
    }
    let _ = write!(t, "\nModel `{}`; SLA as the gate set it.", s.model);
    t
}
