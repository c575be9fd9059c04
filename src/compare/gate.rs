//! The gate proper: every candidate of a framework, in every scenario, under every
//! concurrency cap, gets a rate search ([`super::rate`]) on a server booted the way its
//! search booted it; the highest rate that met the SLA becomes the candidate's row in
//! `candidates.jsonl` (appended and fsync'd as soon as it is known, so a campaign killed
//! with `kill -9` resumes without measuring it again or writing it twice). A candidate the
//! engine could not boot or serve is a row too, with the failure's class and words.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::candidate::{
    Artifacts, Cache, Candidate, Hardware, Memory, Metrics, Normalization, SlaResult, SpecDecode,
    Status, ValidatedFlags, Workload as RowWorkload,
};
use super::fairness;
use super::rate::{self, Outcome, Probe};
use super::scenario::{Scenario, lengths};
use super::search::{Pick, Searched};
use super::settings::CompareSettings;
use super::sla::Figures;
use crate::bench::metrics::BenchResult;
use crate::bench::{Endpoint, LoadSpec, Timing};
use crate::engine::failure::{Failure, FailureClass};
use crate::engine::metrics::ServerFacts;
use crate::recipe::EngineKind;
use crate::store;
use crate::tune::measure::{Measure, Spawned};
use crate::workload::Workload;

/// The file the rows go to, relative to the campaign.
pub const CANDIDATES_FILE: &str = "benchmark/candidates.jsonl";

/// Which (`candidate_id`, `scenario`) pairs have a row.
pub type Done = BTreeSet<(String, String)>;

/// Rows already written and their keys, read with a torn last line cut.
pub fn done(dir: &Path) -> anyhow::Result<(Vec<Candidate>, Done)> {
    let j = store::read_journal::<Candidate>(&dir.join(CANDIDATES_FILE))?;
    if j.repaired_bytes > 0 {
        eprintln!(
            "forge compare: cut a torn last line of {CANDIDATES_FILE} ({} bytes); that candidate is measured again",
            j.repaired_bytes
        );
    }
    let keys = j
        .rows
        .iter()
        .map(|c| (c.candidate_id.clone(), c.workload.scenario.clone()))
        .collect();
    Ok((j.rows, keys))
}

/// Gate every pick of one framework's search in every scenario not yet done.
pub async fn framework(
    s: &CompareSettings,
    dir: &Path,
    fw: EngineKind,
    searched: &Searched,
    done: &BTreeSet<(String, String)>,
    reference: &fairness::Reference,
) -> anyhow::Result<Result<Vec<Candidate>, std::process::ExitCode>> {
    let gate_dir = gate_dir(dir, fw);
    std::fs::create_dir_all(gate_dir.join(store::LOGS_DIR))?;
    std::fs::create_dir_all(gate_dir.join("results"))?;
    let engine = crate::tune::launch::engine_of(&searched.settings, &gate_dir)?;
    let first = s
        .scenarios
        .first()
        .ok_or_else(|| anyhow::anyhow!("no scenario"))?
        .load(dir)?;
    let mut measure = Spawned::new(
        engine,
        &gate_dir,
        first,
        LoadSpec::default(),
        std::time::Duration::from_secs_f64(s.boot_timeout_s),
        crate::engine::process::launches_recorded(&gate_dir.join(store::PIDS_FILE)),
    );
    let facts = Facts::read(&searched.run, reference);
    let live = measure.live_groups();
    let grace = crate::engine::process::grace_or(std::time::Duration::from_secs(30));
    let work = all(s, dir, &gate_dir, &mut measure, searched, done, &facts);
    let rows = tokio::select! {
        r = work => r?,
        code = crate::tune::launch::interrupted() => {
            crate::tune::launch::teardown(&live, grace).await;
            return Ok(Err(std::process::ExitCode::from(code)));
        }
    };
    measure.shutdown().await;
    Ok(Ok(rows))
}

async fn all(
    s: &CompareSettings,
    dir: &Path,
    gate_dir: &Path,
    measure: &mut Spawned,
    searched: &Searched,
    done: &BTreeSet<(String, String)>,
    facts: &Facts,
) -> anyhow::Result<Vec<Candidate>> {
    let mut rows = Vec::new();
    for pick in &searched.picks {
        for sc in &s.scenarios {
            if done.contains(&(pick.id.clone(), sc.name.clone())) {
                continue;
            }
            let w = sc.load(dir)?;
            let row = candidate(s, dir, gate_dir, measure, pick, sc, &w, facts).await?;
            store::append_line(&dir.join(CANDIDATES_FILE), &row)?;
            eprintln!("forge compare: {} {}: {}", pick.id, sc.name, describe(&row));
            rows.push(row);
        }
    }
    Ok(rows)
}

fn describe(c: &Candidate) -> String {
    match (c.status, c.sla.passed) {
        (Status::Ok, true) => format!(
            "{:.2} req/s within the SLA (p50 TTFT {:.0} ms, p50 TPOT {:.1} ms)",
            c.metrics.request_throughput.unwrap_or(0.0),
            c.metrics.p50_ttft_ms.unwrap_or(0.0),
            c.metrics.p50_tpot_ms.unwrap_or(0.0)
        ),
        (Status::Ok, false) => format!("fails the SLA: {}", c.failure_reason),
        (st, _) => format!("{}: {}", st.as_str(), c.failure_reason),
    }
}

/// What the gate knows besides the candidate: the engine's version (from its search's
/// run) and the campaign's fairness reference.
struct Facts {
    version: Option<String>,
    reference: fairness::Reference,
}

impl Facts {
    fn read(run: &Path, reference: &fairness::Reference) -> Facts {
        let version = std::fs::read_to_string(run.join(crate::engine::probe::VERSION_FILE))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Facts {
            version,
            reference: reference.clone(),
        }
    }
}

/// One run of a rate search: the benchmark's result, the engine log it came from and what
/// the server's metrics said, or why the engine gave none.
pub type RunData = Result<(BenchResult, String, ServerFacts), Failure>;

/// Runs of one recipe on one server at the rates a search asks for: the scenario's
/// requests under the SLA, each run's log tagged `TAG-rK`. The gate's rate searches and
/// the duels ([`super::duel`]) measure through it.
pub struct GateProbe<'a> {
    /// The server (booted, or reused when the recipe is unchanged).
    pub measure: &'a mut Spawned,
    /// What is measured.
    pub recipe: &'a crate::recipe::Recipe,
    /// The scenario's requests.
    pub workload: &'a Workload,
    /// Concurrency cap.
    pub cap: Option<usize>,
    /// The campaign (SLA, seed).
    pub s: &'a CompareSettings,
    /// Names the runs' logs.
    pub tag: String,
    /// Runs so far.
    pub k: usize,
}

impl Probe<RunData> for GateProbe<'_> {
    async fn run(&mut self, rate: Option<f64>) -> Outcome<RunData> {
        self.k += 1;
        let load = LoadSpec {
            endpoint: Endpoint::Completions,
            concurrency: self.cap,
            request_rate: rate,
            timing: Timing::Rate,
            num_warmups: 0,
            seed: self.s.seed,
            percentiles: vec![50.0, 99.0],
            ..LoadSpec::default()
        };
        self.measure.set_replay(self.workload.clone(), load);
        let tag = format!("{}-r{}", self.tag, self.k);
        match self.measure.sample(self.recipe, &tag).await {
            Ok(out) => {
                let judged = Outcome::measured(&self.s.sla, &out.result, ());
                Outcome {
                    data: Ok((out.result, out.log, out.facts)),
                    slack: judged.slack,
                    request_throughput: judged.request_throughput,
                }
            }
            Err(e) => Outcome::failed(Err(e)),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn candidate(
    s: &CompareSettings,
    dir: &Path,
    gate_dir: &Path,
    measure: &mut Spawned,
    pick: &Pick,
    sc: &Scenario,
    w: &Workload,
    facts: &Facts,
) -> anyhow::Result<Candidate> {
    let mut row = skeleton(s, pick, sc, w, facts);
    row.normalization = fairness::normalization(&facts.reference, &pick.recipe);
    if let Some(why) = fairness::refusal(&facts.reference, &s.model, &pick.recipe) {
        row.status = Status::Skipped;
        row.failure_reason = why;
        return Ok(row);
    }
    if let Some(f) = &pick.failure {
        fail(&mut row, f);
        return Ok(row);
    }
    let mut best: Option<(rate::Search<RunData>, Option<usize>)> = None;
    for cap in &s.max_concurrency {
        let probe = GateProbe {
            measure,
            recipe: &pick.recipe,
            workload: w,
            cap: *cap,
            s,
            tag: format!(
                "{}-{}-c{}",
                pick.id,
                sc.name,
                cap.map_or("inf".into(), |c| c.to_string())
            ),
            k: 0,
        };
        let found = rate::search(s.rates.into(), probe).await;
        log_search(gate_dir, pick, sc, *cap, &found)?;
        let better = match (&best, found.best()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some((b, _)), Some(r)) => b.best().is_none_or(|x| throughput(x) < throughput(r)),
        };
        if better || best.is_none() {
            best = Some((found, *cap));
        }
    }
    let Some((search, cap)) = best else {
        anyhow::bail!("no concurrency cap to search under");
    };
    fill(&mut row, s, sc, dir, gate_dir, &search, cap)?;
    Ok(row)
}

/// `gate/FRAMEWORK/rate-searches.jsonl`: every run of one rate search.
pub const SEARCHES_FILE: &str = "rate-searches.jsonl";

/// One rate search as recorded: the evidence behind a row's rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchLog {
    /// The candidate.
    pub candidate_id: String,
    /// The scenario.
    pub scenario: String,
    /// The concurrency cap (`null` = none).
    pub max_concurrency: Option<usize>,
    /// How the search ended (`AllAtOnce`, `Converged`, …).
    pub ending: String,
    /// Every run, in order.
    pub runs: Vec<SearchRun>,
}

/// One run of a rate search.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchRun {
    /// Requests per second offered (`null` = all at once).
    pub rate: Option<f64>,
    /// Worst log slack against the SLA (≥ 0 passes; `null` when the run failed).
    pub slack: Option<f64>,
    /// Requests completed per second.
    pub request_throughput: Option<f64>,
    /// Met the SLA.
    pub passed: bool,
    /// Why the run produced no measurement.
    pub failure: Option<String>,
}

impl SearchLog {
    /// The lowest offered rate that missed the SLA above the best passing one (the top of
    /// the bracket the edge lies in); `None` when nothing above it missed.
    pub fn lowest_miss_above(&self, pass: Option<f64>) -> Option<f64> {
        let floor = pass.unwrap_or(0.0);
        self.runs
            .iter()
            .filter(|r| !r.passed)
            .filter_map(|r| r.rate)
            .filter(|r| *r > floor)
            .min_by(f64::total_cmp)
    }
}

fn log_search(
    gate_dir: &Path,
    pick: &Pick,
    sc: &Scenario,
    cap: Option<usize>,
    found: &rate::Search<RunData>,
) -> anyhow::Result<()> {
    let row = SearchLog {
        candidate_id: pick.id.clone(),
        scenario: sc.name.clone(),
        max_concurrency: cap,
        ending: format!("{:?}", found.ending),
        runs: found
            .runs
            .iter()
            .map(|r| SearchRun {
                rate: r.rate,
                slack: r.slack.is_finite().then_some(r.slack),
                request_throughput: r.data.as_ref().ok().map(|(b, _, _)| b.request_throughput),
                passed: r.passed(),
                failure: r.data.as_ref().err().map(|f| f.summary.clone()),
            })
            .collect(),
    };
    store::append_line(&gate_dir.join(SEARCHES_FILE), &row)?;
    Ok(())
}

fn throughput(r: &rate::Run<RunData>) -> f64 {
    r.data
        .as_ref()
        .map(|(b, _, _)| b.request_throughput)
        .unwrap_or(0.0)
}

/// The row from a finished search: the best passing run's metrics, or why none passed.
#[allow(clippy::too_many_arguments)]
fn fill(
    row: &mut Candidate,
    s: &CompareSettings,
    sc: &Scenario,
    dir: &Path,
    gate_dir: &Path,
    search: &rate::Search<RunData>,
    cap: Option<usize>,
) -> anyhow::Result<()> {
    row.workload.max_concurrency = cap;
    let shown = search.best().or_else(|| {
        // Nothing passed: show the run closest to the SLA that measured something.
        search
            .runs
            .iter()
            .filter(|r| r.data.is_ok())
            .max_by(|a, b| a.slack.total_cmp(&b.slack))
    });
    let Some(run) = shown else {
        // Every run failed: the first failure says why.
        if let Some(Err(f)) = search.runs.first().map(|r| &r.data) {
            fail(row, f);
        }
        return Ok(());
    };
    let Ok((result, log, facts)) = &run.data else {
        return Ok(());
    };
    if facts.available {
        row.cache.prefix_cache_hit_rate = Some(facts.prefix_hit_rate());
        row.cache.kv_cache_utilization = Some(facts.peak_kv_usage);
    }
    row.workload.request_rate = run.rate;
    row.benchmark_command = super::commands::shell(&super::commands::forge_bench(
        s,
        sc,
        dir,
        pick_engine(row),
        run.rate,
        cap,
    ));
    row.metrics = metrics(result);
    row.sla.passed = run.passed();
    if !run.passed() {
        let (bound, slack) = s.sla.worst(&Figures::of(result));
        row.failure_reason = format!(
            "no request rate met the SLA: at {} req/s {bound} was {:.0} % over its bound",
            run.rate.map_or("inf".into(), |r| format!("{r:.2}")),
            ((-slack).exp() - 1.0) * 100.0
        );
    }
    let name = format!("{}-{}.json", row.candidate_id, row.workload.scenario);
    let raw = gate_dir.join("results").join(&name);
    store::write_atomic(&raw, serde_json::to_string_pretty(result)?.as_bytes())?;
    row.artifacts.server_log = Some(format!("gate/{}/{log}", row.framework));
    row.artifacts.raw_result = Some(format!("gate/{}/results/{name}", row.framework));
    Ok(())
}

fn metrics(r: &BenchResult) -> Metrics {
    let p = |k: &str| r.percentile_keys.get(k).copied();
    let f = Figures::of(r);
    Metrics {
        request_throughput: Some(r.request_throughput),
        output_token_throughput: Some(r.output_throughput),
        total_token_throughput: Some(r.total_token_throughput),
        p50_ttft_ms: Some(r.median_ttft_ms),
        mean_ttft_ms: Some(r.mean_ttft_ms),
        p99_ttft_ms: p("p99_ttft_ms"),
        p50_tpot_ms: Some(r.median_tpot_ms),
        mean_tpot_ms: Some(r.mean_tpot_ms),
        p99_tpot_ms: p("p99_tpot_ms"),
        p50_e2e_ms: Some(r.median_e2el_ms),
        mean_e2e_ms: Some(r.mean_e2el_ms),
        p99_e2e_ms: p("p99_e2el_ms"),
        success_rate: Some(f.success_rate),
    }
}

fn pick_engine(row: &Candidate) -> EngineKind {
    EngineKind::parse(&row.framework).unwrap_or_default()
}

/// The contract's status for a failure class.
pub fn status_of(class: FailureClass) -> Status {
    match class {
        FailureClass::InfeasibleOom => Status::Oom,
        FailureClass::BootTimeout => Status::Timeout,
        _ => Status::Failed,
    }
}

fn fail(row: &mut Candidate, f: &Failure) {
    row.status = status_of(f.class);
    row.sla.passed = false;
    let mut reason = format!("{}: {}", f.class.as_str(), f.summary);
    if let Some(h) = f.hints.first() {
        reason.push_str(&format!(" ({h})"));
    }
    row.failure_reason = reason;
}

fn skeleton(
    s: &CompareSettings,
    pick: &Pick,
    sc: &Scenario,
    w: &Workload,
    facts: &Facts,
) -> Candidate {
    let l = lengths(w);
    let fw = pick.recipe.engine;
    let hw = &pick.recipe.hardware;
    Candidate {
        framework: fw.as_str().to_string(),
        framework_version: facts.version.clone(),
        framework_commit: None,
        candidate_id: pick.id.clone(),
        model: s.model.clone(),
        status: Status::Ok,
        failure_reason: String::new(),
        hardware: Hardware {
            gpu_model: hw.gpu_type.clone(),
            gpu_count: hw.count,
            visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        },
        workload: RowWorkload {
            kind: sc.kind.clone(),
            scenario: sc.name.clone(),
            dataset_path: Some(sc.path.display().to_string()),
            input_len: sc.input_len,
            output_len: sc.output_len,
            input_len_p50: Some(l.input_p50),
            input_len_p95: Some(l.input_p95),
            output_len_p50: Some(l.output_p50),
            output_len_p95: Some(l.output_p95),
            num_prompts: l.requests,
            request_rate: None,
            max_concurrency: None,
            endpoint: "/v1/completions".into(),
        },
        sla: SlaResult {
            max_p50_ttft_ms: s.sla.max_p50_ttft_ms,
            max_p50_tpot_ms: s.sla.max_p50_tpot_ms,
            min_success_rate: s.sla.min_success_rate,
            max_p50_e2e_ms: s.sla.max_p50_e2e_ms,
            passed: false,
        },
        metrics: Metrics::default(),
        spec_decode: spec_decode(&pick.recipe),
        cache: Cache::default(),
        memory: Memory::default(),
        normalization: Normalization {
            same_gpu_count: true,
            same_model_weights: true,
            same_tokenizer: true,
            same_endpoint: true,
            notes: Vec::new(),
        },
        server_command: super::commands::server_line(&pick.recipe).unwrap_or_default(),
        benchmark_command: String::new(),
        validated_cli_flags: ValidatedFlags::default(),
        artifacts: Artifacts {
            server_log: None,
            raw_result: None,
            server_help: Some(format!("help/{}.txt", fw.as_str())),
            benchmark_help: None,
        },
    }
}

/// Speculative decoding as the recipe asks for it (the knobs whose names say so).
fn spec_decode(r: &crate::recipe::Recipe) -> SpecDecode {
    let text = |v: &serde_json::Value| v.as_str().map_or(v.to_string(), str::to_string);
    let method = r
        .config
        .iter()
        .find(|(k, _)| {
            k.contains("speculative") && (k.contains("method") || k.contains("algorithm"))
        })
        .map(|(_, v)| text(v));
    let tokens = r
        .config
        .iter()
        .find(|(k, _)| k.contains("speculative") && (k.contains("tokens") || k.contains("steps")))
        .and_then(|(_, v)| v.as_u64())
        .and_then(|n| u32::try_from(n).ok());
    SpecDecode {
        enabled: method.is_some(),
        method,
        num_speculative_tokens: tokens,
        acceptance_rate: None,
    }
}

/// Where a framework's gate keeps its logs and raw results.
pub fn gate_dir(dir: &Path, fw: EngineKind) -> PathBuf {
    dir.join("gate").join(fw.as_str())
}
