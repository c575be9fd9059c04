//! `forge report` in every format, snapshot-tested on a run built here with the library's
//! own types and the store's writers (so a changed row type breaks this file at compile
//! time, not silently): a baseline; kept, reverted, inconclusive and failed experiments
//! (an OOM classified from a real vLLM log line, a crash with its hint lines); a duplicate
//! and a rejected proposal; a converged layer; a confirmation with its interval; the
//! analysis and `completed.json`. Also: the store root and its `runs/` directory resolve to
//! the latest run, an interrupted run, and a run whose baseline could not be measured.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use clap::Parser;
use common::bin::forge;
use forge::agent::Analysis;
use forge::cli::{Cli, Command as CliCommand};
use forge::engine::failure::{Failure, FailureClass};
use forge::engine::metrics::ServerFacts;
use forge::recipe::Layer;
use forge::recipe::{EngineKind, Hardware, Recipe};
use forge::record::frontier::{Curve, Frontier, FrontierPoint};
use forge::record::settings::TuneSettings;
use forge::record::{
    AnswerAgreement, Arm, ExperimentRow, LatencyQuantiles, Measurement, Sample, Status,
};
use forge::store::{self, Store};
use forge::tune::verdict::Interval;
use serde_json::{Value, json};

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
const AGENT: &str = "openai/gpt-4o";

/// vLLM's own words when the KV cache cannot hold one request of the model's length.
const OOM_LOG: &str = "\
INFO 05-13 04:31:02 [gpu_worker.py:298] Available KV cache memory: 9.50 GiB
ERROR 05-13 04:31:02 [core.py:700] ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, which is larger than the available KV cache memory (9.50 GiB). Based on the available memory, the estimated maximum model length is 77824. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.
";

/// The end of a log of an engine that died under load.
const CRASH_LOG: &str = "\
INFO 05-13 04:52:40 [loggers.py:123] Engine 000: Avg prompt throughput: 9120.4 tokens/s
ERROR 05-13 04:52:41 [core.py:712] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.25 GiB. GPU 0 has a total capacity of 79.25 GiB of which 312.00 MiB is free.
ERROR 05-13 04:52:41 [core.py:712] EngineCore encountered a fatal error.
";

fn settings() -> TuneSettings {
    let argv = [
        "forge",
        "tune",
        "--dry-run",
        "--sim-gpu",
        "H100",
        "-m",
        MODEL,
        "-w",
        "/data/workloads/chat.jsonl",
        "--llm",
        AGENT,
        "--max-experiments",
        "12",
        "--max-dollars",
        "2",
    ];
    match Cli::parse_from(argv).command {
        CliCommand::Tune(t) => forge::commands::tune::resolve(&t.args, None).unwrap(),
        _ => unreachable!(),
    }
}

fn hardware() -> Hardware {
    Hardware {
        vendor: "nvidia".into(),
        gpu_type: "H100".into(),
        count: 1,
        memory_gb_per_gpu: 79.6,
    }
}

/// A measurement at `tput` output tok/s (the objective), 256 output tokens a request.
fn m(tput: f64, p99_e2el_ms: f64, accuracy: f64) -> Measurement {
    Measurement {
        value: tput,
        sla_ok: true,
        accuracy: Some(accuracy),
        output_throughput: tput,
        request_throughput: tput / 256.0,
        goodput: None,
        median_ttft_ms: 182.5,
        p99_ttft_ms: 911.25,
        median_tpot_ms: 21.5,
        p99_tpot_ms: 38.75,
        p99_e2el_ms,
        failed: 0,
        completed: 200,
        failures: Default::default(),
        sla_slack: None,
        // A changed answer shows in the per-request measures too.
        answers: (accuracy < 1.0).then_some(AnswerAgreement {
            exact: 0.25,
            prefix: 0.8,
            similarity: accuracy,
        }),
        latency: None,
    }
}

fn sample(arm: Arm, m: Measurement) -> Sample {
    Sample {
        arm,
        m,
        facts: ServerFacts {
            preemptions: 12.0,
            prefix_queries: 51200.0,
            prefix_hits: 0.0,
            peak_running: 96.0,
            peak_waiting: 104.0,
            peak_kv_usage: 0.875,
            available: true,
        },
        pair: None,
    }
}

fn changes(v: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn interval(gain_pct: f64, lo_pct: f64, hi_pct: f64, pairs: usize) -> Interval {
    Interval {
        gain_pct,
        lo_pct,
        hi_pct,
        confidence: 0.95,
        pairs,
    }
}

/// A row with nothing measured, as the loop's `bare_row` makes it.
fn bare(seq: u32, layer: Layer, status: Status, on: &Recipe, rationale: &str) -> ExperimentRow {
    let mut row = ExperimentRow::bare(seq, layer, status, on, rationale, AGENT.into());
    row.finished_at = format!("2026-05-13T04:{:02}:00+00:00", 10 + 3 * seq);
    row
}

/// A proposal from `base` in `layer`, as the loop's `candidate_row` makes it.
struct Move<'a> {
    seq: u32,
    exp: u32,
    base: &'a Recipe,
    layer: Layer,
    changes: Value,
    rationale: &'a str,
    predicted: f64,
    cost_usd: f64,
}

impl Move<'_> {
    fn row(&self, status: Status) -> (ExperimentRow, Recipe) {
        let ch = changes(self.changes.clone());
        let cand = self.base.mutate(self.layer, &ch);
        let mut r = bare(self.seq, self.layer, status, &cand, self.rationale);
        r.exp = Some(self.exp);
        r.changes = ch;
        r.predicted_gain_pct = Some(self.predicted);
        r.cost_usd = self.cost_usd;
        r.wall_s = 60.0 + f64::from(self.seq);
        r.engine_log = Some(format!("logs/e{:04}-{}-c1.log", self.seq, cand.id));
        (r, cand)
    }

    /// A measured outcome: `pairs` candidate/incumbent pairs.
    fn measured(
        &self,
        status: Status,
        iv: Interval,
        score: f64,
        cand: Measurement,
        inc: &Measurement,
    ) -> (ExperimentRow, Recipe) {
        let (mut r, c) = self.row(status);
        let lr = (1.0 + iv.gain_pct / 100.0).ln();
        r.log_ratios = vec![lr; iv.pairs];
        for _ in 0..iv.pairs {
            r.samples.push(sample(Arm::Candidate, cand.clone()));
            r.samples.push(sample(Arm::Incumbent, inc.clone()));
        }
        r.measurement = Some(cand);
        r.interval = Some(iv);
        r.score = Some(score);
        (r, c)
    }

    fn failed(&self, f: Failure) -> ExperimentRow {
        let (mut r, _) = self.row(Status::Failed);
        r.failure = Some(f);
        r
    }
}

/// The rows of a run that saw every kind of row, in journal order, and the best recipe.
fn rows() -> (Vec<ExperimentRow>, Recipe) {
    let base = Recipe::baseline(EngineKind::Vllm, MODEL, hardware());
    let mb = m(1520.5, 4210.0, 1.0);
    let mut b = bare(
        0,
        Layer::Config,
        Status::Baseline,
        &base,
        "baseline: the engine's own defaults for this GPU",
    );
    b.exp = Some(0);
    b.score = Some(1.0);
    b.measurement = Some(mb.clone());
    // One over-long prompt fails with a 400 in the baseline's run: the report lists it.
    let mut failing = mb.clone();
    failing.failures = [("http_status".to_string(), 1)].into();
    b.samples = vec![sample(Arm::Incumbent, failing)];
    b.engine_log = Some("logs/e0000-baseline.log".into());
    b.wall_s = 41.5;
    let mut out = vec![b];

    let mv = |seq, exp, base, layer, changes, rationale, predicted, cost_usd| Move {
        seq,
        exp,
        base,
        layer,
        changes,
        rationale,
        predicted,
        cost_usd,
    };
    let seqs = mv(
        1,
        1,
        &base,
        Layer::Config,
        json!({"max_num_seqs": 256}),
        "Preemptions at 1024 sequences and the simulator's optimum near 256: lower max_num_seqs.",
        4.7,
        0.008085,
    );
    let m1 = m(1614.75, 3980.0, 1.0);
    let (r, c1) = seqs.measured(
        Status::Kept,
        interval(6.2, 3.1, 9.4, 2),
        1.062,
        m1.clone(),
        &mb,
    );
    out.push(r);
    let tokens = mv(
        2,
        2,
        &c1,
        Layer::Config,
        json!({"max_num_batched_tokens": 16384}),
        "Prefill-heavy steps: a larger token budget admits prefills sooner on an H100.",
        0.7,
        0.008565,
    );
    let (r, _) = tokens.measured(
        Status::Reverted,
        interval(-2.1, -3.5, -0.7, 2),
        1.0397,
        m(1580.25, 4105.0, 1.0),
        &m1,
    );
    out.push(r);
    let (r, _) = mv(
        3,
        3,
        &c1,
        Layer::Config,
        json!({"long_prefill_token_threshold": 2048}),
        "Long prompts stall decoders | cap one request's prefill chunk per step.",
        1.0,
        0.00878,
    )
    .measured(
        Status::Inconclusive,
        interval(0.9, -1.2, 3.0, 4),
        1.0716,
        m(1629.0, 3950.0, 1.0),
        &m1,
    );
    out.push(r);
    let oom = forge::engine::vllm::logs::classify_exit(Some(1), None, OOM_LOG);
    out.push(
        mv(
            4,
            4,
            &c1,
            Layer::Config,
            json!({"gpu_memory_utilization": 0.5}),
            "Leave memory for a co-located embedder: lower gpu_memory_utilization.",
            -3.0,
            0.009150,
        )
        .failed(oom),
    );
    let crash = Failure {
        class: FailureClass::CrashedDuringBench,
        exit_code: Some(1),
        signal: None,
        summary: "engine exited during the benchmark (exit code 1)".into(),
        hints: forge::engine::vllm::logs::hints(CRASH_LOG),
    };
    out.push(
        mv(
            5,
            5,
            &c1,
            Layer::Config,
            json!({"max_cudagraph_capture_size": 1024}),
            "Capture graphs up to the batch sizes this workload reaches.",
            1.5,
            0.0092,
        )
        .failed(crash),
    );
    // The agent repeats a move already measured from this base.
    let (mut dup, dc) = tokens.row(Status::Duplicate);
    dup.seq = 6;
    dup.exp = None;
    dup.id = format!("dup-{}", dc.id);
    dup.wall_s = 0.0;
    dup.cost_usd = 0.0087;
    dup.engine_log = None;
    dup.finished_at = bare(6, Layer::Config, Status::Duplicate, &c1, "").finished_at;
    out.push(dup);
    let mut rej = bare(
        7,
        Layer::Config,
        Status::Rejected,
        &c1,
        "Admit far more sequences at once.",
    );
    rej.id = "rej-0007".into();
    rej.changes = changes(json!({"max_num_seqs": 100000}));
    rej.cost_usd = 0.0089;
    rej.failure = Some(Failure {
        class: FailureClass::InfeasibleConfig,
        exit_code: None,
        signal: None,
        summary: "max_num_seqs: 100000 is outside 1..=65536".into(),
        hints: vec![],
    });
    out.push(rej);
    let mut conv = bare(
        8,
        Layer::Config,
        Status::Converged,
        &c1,
        "Every remaining move is predicted below the keep threshold: layer 1 has converged.",
    );
    conv.cost_usd = 0.008865;
    out.push(conv);
    let (r, c2) = mv(
        9,
        6,
        &c1,
        Layer::Quant,
        json!({"kv_cache_quant": "fp8"}),
        "fp8 KV halves KV bytes per token on an H100 (native FP8), more sequences fit.",
        5.0,
        0.0157,
    )
    .measured(
        Status::Kept,
        interval(8.5, 5.0, 12.1, 3),
        1.1523,
        m(1752.0, 3710.0, 0.996),
        &m1,
    );
    out.push(r);
    let mut conv = bare(
        10,
        Layer::Quant,
        Status::Converged,
        &c2,
        "Weight quantization would cost accuracy for little gain at this batch size: converged.",
    );
    conv.cost_usd = 0.00830;
    out.push(conv);
    let (r, _) = mv(
        11,
        7,
        &c2,
        Layer::Kernel,
        json!({"attention_backend": "FLASHINFER"}),
        "FlashInfer's decode kernels suit fp8 KV on Hopper.",
        2.0,
        0.008015,
    )
    .measured(
        Status::Reverted,
        interval(-1.4, -2.6, -0.2, 2),
        1.1362,
        m(1727.5, 3760.0, 0.996),
        &m(1752.0, 3710.0, 0.996),
    );
    out.push(r);
    let mut conv = bare(
        12,
        Layer::Kernel,
        Status::Converged,
        &c2,
        "Nothing else worth measuring in this layer: converged.",
    );
    conv.cost_usd = 0.008025;
    out.push(conv);
    let mut confirm = bare(
        13,
        Layer::Config,
        Status::Confirmation,
        &c2,
        "confirmation: the best recipe against the baseline, measured side by side",
    );
    let best = m(1750.25, 3715.0, 0.996);
    for _ in 0..4 {
        confirm.samples.push(sample(Arm::Candidate, best.clone()));
        confirm.samples.push(sample(Arm::Incumbent, mb.clone()));
    }
    confirm.interval = Some(interval(15.1, 12.0, 18.3, 4));
    confirm.measurement = Some(best);
    confirm.score = Some(1.1523);
    confirm.wall_s = 180.0;
    out.push(confirm);
    (out, c2)
}

/// Write a run the way `forge tune` does: config, then each row appended (fsync'd) with the
/// views rewritten after it; `finish` (the stop reason) adds the analysis, if any, and
/// `completed.json`.
fn write_run(
    root: &Path,
    at: (u32, u32),
    rows: &[ExperimentRow],
    finish: Option<&str>,
    analysis: Option<&str>,
) -> PathBuf {
    let when = chrono::Utc
        .with_ymd_and_hms(2026, 5, at.0, at.1, 10, 0)
        .unwrap();
    let run = Store::new(root).create_run(when).unwrap();
    let dir = run.path;
    let config = serde_json::to_string_pretty(&settings()).unwrap();
    store::write_atomic(&dir.join(store::CONFIG_FILE), config.as_bytes()).unwrap();
    for (i, r) in rows.iter().enumerate() {
        store::append_line(&dir.join(store::JOURNAL_FILE), r).unwrap();
        forge::tune::views::write_all(&dir, &rows[..=i]).unwrap();
    }
    let Some(reason) = finish else {
        return dir;
    };
    let mut spent: f64 = rows.iter().map(|r| r.cost_usd).sum();
    if let Some(text) = analysis {
        let a = Analysis {
            text: text.into(),
            cost_usd: 0.0134,
        };
        spent += a.cost_usd;
        let body = serde_json::to_string_pretty(&a).unwrap();
        store::write_atomic(&dir.join(forge::store::ANALYSIS_FILE), body.as_bytes()).unwrap();
    }
    let best = rows
        .iter()
        .rev()
        .find(|r| matches!(r.status, Status::Kept | Status::Baseline));
    let completed = json!({
        "completed_at": "2026-05-13T05:02:00+00:00",
        "reason": reason,
        "experiments": rows.iter().filter(|r| r.status.is_experiment()).count(),
        "best_recipe_id": best.map(|r| r.recipe.id.clone()),
        "best_score": best.and_then(|r| r.score),
        "spent_usd": spent,
    });
    let c = serde_json::to_string_pretty(&completed).unwrap();
    store::write_atomic(&dir.join(store::COMPLETED_FILE), c.as_bytes()).unwrap();
    dir
}

/// A run whose engine was not installed: the baseline failed and nothing was tuned.
fn no_engine_rows() -> Vec<ExperimentRow> {
    let base = Recipe::baseline(EngineKind::Vllm, MODEL, hardware());
    let mut b = bare(
        0,
        Layer::Config,
        Status::Failed,
        &base,
        "baseline: the engine's own defaults for this GPU",
    );
    b.exp = Some(0);
    b.engine_log = Some("logs/e0000-baseline.log".into());
    b.failure = Some(forge::engine::vllm::logs::classify_exit(
        Some(1),
        None,
        "/usr/bin/python3: No module named vllm\n",
    ));
    vec![b]
}

/// A store with an older failed run (001) and the full run (002).
struct Fixture {
    tmp: tempfile::TempDir,
    full: PathBuf,
    no_engine: PathBuf,
    best: Recipe,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(".forge");
        let no_engine = write_run(
            &root,
            (12, 21),
            &no_engine_rows(),
            Some(
                "the baseline could not be measured (engine_missing: /usr/bin/python3: No \
                 module named vllm); nothing to tune against",
            ),
            None,
        );
        let (rows, best) = rows();
        let full = write_run(
            &root,
            (13, 4),
            &rows,
            Some("every layer converged"),
            Some(
                "max_num_seqs 256 ended the preemptions and fp8 KV added capacity; the token \
                 budget and FlashInfer did not help on this workload.",
            ),
        );
        Fixture {
            tmp,
            full,
            no_engine,
            best,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join(".forge")
    }

    fn report(&self, path: &Path, format: &str) -> String {
        report(self.tmp.path(), path, format)
    }
}

/// `forge report PATH --format F` run in `cwd`: stdout with `cwd` filtered to `[TMP]`.
fn report(cwd: &Path, path: &Path, format: &str) -> String {
    let out = forge(&["report"])
        .arg(path)
        .args(["--format", format])
        .current_dir(cwd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(&cwd.display().to_string(), "[TMP]")
}

#[test]
fn table() {
    let f = Fixture::new();
    let text = f.report(&f.full, "table");
    // Hand-checked headline figures before the snapshot.
    assert!(
        text.contains("State: completed (every layer converged)\n"),
        "{text}"
    );
    assert!(
        text.contains("Total experiments: 8 (2 refused proposals)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Recommended: {} (generation 2): max_num_seqs=256, quant.kv_cache_quant=\"fp8\"\n",
            f.best.id
        )),
        "{text}"
    );
    // One gain figure: the side-by-side confirmation's, labelled.
    assert!(
        text.contains("Gain over baseline: +15.1 % (95 % CI +12.0 % … +18.3 %, recommended and baseline measured side by side)\n"),
        "{text}"
    );
    assert!(!text.contains("Best score"), "{text}");
    assert!(
        text.contains("Objective: baseline 1520.5 tok/s (median of 7 runs) → recommended 1752.0 tok/s (median of 9 runs)\n"),
        "{text}"
    );
    assert!(
        text.contains("Failures by kind: infeasible_oom 1, crashed_during_bench 1\n"),
        "{text}"
    );
    assert!(
        text.contains("Failed requests by kind: http_status 1\n"),
        "{text}"
    );
    insta::assert_snapshot!("report_table", text);
}

#[test]
fn tsv_is_the_runs_own_view() {
    let f = Fixture::new();
    let text = f.report(&f.full, "tsv");
    let view = std::fs::read_to_string(f.full.join(store::TSV_FILE)).unwrap();
    assert_eq!(text, view);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 14);
    assert!(lines.iter().all(|l| l.split('\t').count() == 12), "{text}");
    // Full rationales (no truncation), failure class and summary in front.
    assert!(
        lines[5].ends_with("[infeasible_oom] ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, which is larger than the available KV cache memory (9.50 GiB). Based on the available memory, the estimated maximum model length is 77824. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine. — Leave memory for a co-located embedder: lower gpu_memory_utilization."),
        "{}",
        lines[5]
    );
    insta::assert_snapshot!("report_tsv", text);
}

#[test]
fn json_report() {
    let f = Fixture::new();
    let text = f.report(&f.full, "json");
    let v: Value = serde_json::from_str(&text).unwrap();
    let s = &v["summary"];
    assert_eq!(s["experiments"], 8);
    assert_eq!(s["refused"], 2);
    assert_eq!(s["recommended_id"], f.best.id.as_str());
    assert_eq!(s["confirmed"], true);
    assert_eq!(s["request_failures"]["http_status"], 1);
    assert_eq!(s["gain"]["source"], "confirmation");
    assert_eq!(s["failures"]["infeasible_oom"], 1);
    assert_eq!(s["failures"]["crashed_during_bench"], 1);
    assert_eq!(
        s["failures"]["infeasible_config"], 0,
        "rejected proposals are not failures"
    );
    assert_eq!(s["state"], "completed");
    // Every row round-trips into today's type.
    let back: Vec<ExperimentRow> = serde_json::from_value(v["experiments"].clone()).unwrap();
    assert_eq!(back, rows().0);
    let oom = back[4].failure.as_ref().unwrap();
    assert_eq!(oom.class, FailureClass::InfeasibleOom);
    assert!(
        oom.hints
            .iter()
            .any(|h| h.contains("the estimated maximum model length is 77824")),
        "{:?}",
        oom.hints
    );
    assert!(!back[5].failure.as_ref().unwrap().hints.is_empty());
    let settings: TuneSettings = serde_json::from_value(v["settings"].clone()).unwrap();
    assert_eq!(settings, self::settings());
    insta::assert_snapshot!("report_json", text);
}

#[test]
fn markdown() {
    let f = Fixture::new();
    let text = f.report(&f.full, "md");
    assert!(
        text.starts_with("# Forge Report: [TMP]/.forge/runs/002_2026-05-13T04-10-00\n"),
        "{text}"
    );
    // A `|` inside a rationale must not open a new column.
    let row3 = text.lines().find(|l| l.contains("Long prompts")).unwrap();
    assert!(row3.contains("decoders \\| cap"), "{row3}");
    assert_eq!(row3.matches(" | ").count(), 11, "{row3}");
    insta::assert_snapshot!("report_md", text);
}

#[test]
fn the_store_root_and_its_runs_dir_show_the_latest_run() {
    let f = Fixture::new();
    let direct = f.report(&f.full, "table");
    for path in [f.root(), f.root().join("runs")] {
        assert_eq!(f.report(&path, "table"), direct, "{}", path.display());
    }
    // Relative to the working directory, as `forge report` with no argument reads it.
    assert_eq!(
        report(f.tmp.path(), Path::new(".forge"), "table"),
        direct.replace("[TMP]/", "")
    );
    // The older run is still there and readable on its own.
    let old = f.report(&f.no_engine, "table");
    assert_ne!(old, direct);
    insta::assert_snapshot!("report_store_root_latest", f.report(&f.root(), "table"));
    insta::assert_snapshot!("report_baseline_failed", old);
}

#[test]
fn an_interrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (rows, _) = rows();
    // Killed while measuring the quant layer's first move: no confirmation, no analysis,
    // no completed.json.
    let dir = write_run(&tmp.path().join(".forge"), (13, 4), &rows[..9], None, None);
    assert!(!dir.join(store::COMPLETED_FILE).exists());
    let text = report(tmp.path(), &dir, "table");
    assert!(
        text.contains("State: interrupted (continue it with: forge tune resume "),
        "{text}"
    );
    assert!(!text.contains("Analysis:"), "{text}");
    // No confirmation yet: the gain is the kept step's, marked approximate.
    assert!(
        text.contains("Gain over baseline: not confirmed side by side; chained from kept steps, approximate: +6.2 % (95 % CI +3.1 % … +9.4 %)"),
        "{text}"
    );
    insta::assert_snapshot!("report_interrupted", text);
}

/// The structure of one chart's SVG — kind, title, axis labels, tick labels, each series
/// with its marks, reference lines, legend — without coordinates.
fn svg_structure(svg: &str) -> String {
    let grab = |re: &str| -> Vec<String> {
        regex::Regex::new(re)
            .unwrap()
            .captures_iter(svg)
            .map(|c| c[1].to_string())
            .collect()
    };
    let mut out = Vec::new();
    out.push(format!(
        "kind: {}",
        grab(r#"class="chart (\w+)""#).join(",")
    ));
    out.push(format!(
        "title: {}",
        grab(r#"aria-label="([^"]*)""#).join(",")
    ));
    out.push(format!(
        "x label: {}",
        grab(r#"class="x-label"[^>]*>([^<]*)<"#).join(",")
    ));
    out.push(format!(
        "y label: {}",
        grab(r#"class="y-label"[^>]*>([^<]*)<"#).join(",")
    ));
    let axes = svg.split(r#"<g class="axes""#).nth(1).unwrap_or("");
    let axes = axes.split("</g>").next().unwrap_or("");
    let ticks: Vec<String> = regex::Regex::new(r#"text-anchor="(?:end|middle)">([^<]*)<"#)
        .unwrap()
        .captures_iter(axes)
        .map(|c| c[1].to_string())
        .collect();
    out.push(format!("tick labels: {}", ticks.join(" | ")));
    for part in svg.split(r#"<g class="series" data-name=""#).skip(1) {
        let name = part.split('"').next().unwrap_or("");
        let body = part.split(r#"<g class="series""#).next().unwrap_or(part);
        let body = body.split(r#"<g class="legend""#).next().unwrap_or(body);
        out.push(format!(
            "series {name}: {} points, {} intervals, {} lines, {} bars",
            body.matches(r#"<g class="point">"#).count(),
            body.matches("stroke-width=\"1.5\"").count(),
            body.matches("<polyline").count(),
            body.matches("<rect").count(),
        ));
    }
    let refs = grab(r##"stroke-dasharray="6 4"/><text[^>]*>([^<]*)<"##);
    out.push(format!("reference lines: {}", refs.join(", ")));
    let legend = svg.split(r#"<g class="legend""#).nth(1).unwrap_or("");
    let names: Vec<String> = regex::Regex::new(r#"<text[^>]*>([^<]*)</text>"#)
        .unwrap()
        .captures_iter(legend)
        .map(|c| c[1].to_string())
        .collect();
    out.push(format!("legend: {}", names.join(", ")));
    out.join("\n")
}

#[test]
fn html_is_one_self_contained_page_with_its_charts() {
    let f = Fixture::new();
    let html = f.report(&f.full, "html");
    assert!(
        html.starts_with("<!doctype html><html lang=\"en\">"),
        "{html}"
    );
    // Nothing is fetched or run: no script, stylesheet link, image source or font URL.
    for bad in ["<script", "<link", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(bad), "{bad}");
    }
    let urls: Vec<&str> = regex::Regex::new(r#"https?://[^\s"<]*"#)
        .unwrap()
        .find_iter(&html)
        .map(|m| m.as_str())
        .collect();
    assert!(
        urls.iter().all(|u| *u == "http://www.w3.org/2000/svg"),
        "{urls:?}"
    );
    // The headline and the exact command to deploy.
    assert!(
        html.contains("Gain over baseline: +15.1 % (95 % CI +12.0 % … +18.3 %"),
        "{html}"
    );
    assert!(
        html.contains("<pre class=\"deploy\"><code>vllm serve"),
        "{html}"
    );
    assert!(html.contains("--max-num-seqs 256"), "{html}");
    // Every chart, each with data: without a predicted frontier or latency distributions
    // (a run recorded before forge kept them), the measured points alone and the bars of
    // p50 and p99.
    assert_eq!(html.matches("<svg ").count(), 5, "{html}");
    for name in ["verdicts", "throughput", "latency"] {
        let structure = svg_structure(chart(&html, name));
        assert!(
            structure.lines().any(|l| l.starts_with("series ")
                && !l.contains(": 0 points, 0 intervals, 0 lines, 0 bars")),
            "{name} has no data: {structure}"
        );
        insta::assert_snapshot!(format!("chart_{name}"), structure);
    }
    for name in ["pareto", "sla-cost"] {
        assert!(
            chart(&html, name).contains("class=\"point\"")
                || chart(&html, name).contains("<rect x"),
            "{name}"
        );
    }
}

#[test]
fn html_goes_to_a_file_with_o() {
    let f = Fixture::new();
    let file = f.tmp.path().join("out.html");
    let out = forge(&["report"])
        .arg(&f.full)
        .args(["--format", "html", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.ends_with("</html>\n"));
}

#[test]
fn list_shows_every_run_of_the_store() {
    let f = Fixture::new();
    let out = forge(&["report", "--list"])
        .arg(f.root())
        .current_dir(f.tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        3,
        "a header and a line per run: {text}"
    );
    assert!(text.contains("+15.1 % [+12.0, +18.3]"), "{text}");
    insta::assert_snapshot!("report_list", text);
}

/// `m` with latency distributions shaped from its own median and p99s (what a run records
/// since forge keeps every quantile).
fn with_distributions(mut m: Measurement) -> Measurement {
    let levels = LatencyQuantiles::LEVELS.to_vec();
    let shape = |median: f64, p99: f64| -> Vec<f64> {
        levels
            .iter()
            .map(|l| {
                if *l <= 50.0 {
                    median * (0.5 + l / 100.0)
                } else {
                    median + (p99 - median) * (l - 50.0) / 49.0
                }
            })
            .collect()
    };
    m.latency = Some(LatencyQuantiles {
        levels: levels.clone(),
        ttft_ms: shape(m.median_ttft_ms, m.p99_ttft_ms),
        tpot_ms: shape(m.median_tpot_ms, m.p99_tpot_ms),
        e2el_ms: shape(m.p99_e2el_ms / 3.0, m.p99_e2el_ms),
    });
    m
}

/// The simulator's curves for the baseline and the recommended recipe.
fn frontier(rows: &[ExperimentRow]) -> Frontier {
    let point = |concurrency, output_throughput, median_tpot_ms, p99_tpot_ms| FrontierPoint {
        concurrency,
        output_throughput,
        median_tpot_ms,
        p99_tpot_ms,
        p99_ttft_ms: 4.0 * p99_tpot_ms,
    };
    let curve = |label: &str, id: &str, k: f64| Curve {
        label: label.into(),
        recipe_id: id.into(),
        gpus: 1,
        points: vec![
            point(1, 90.0 * k, 10.5, 11.0),
            point(4, 340.0 * k, 11.5, 13.0),
            point(16, 1100.0 * k, 16.0, 24.0),
            point(64, 1650.0 * k, 24.0, 41.0),
            point(256, 1900.0 * k, 52.0, 88.0),
        ],
    };
    let best = forge::record::recommended(rows).unwrap();
    Frontier {
        gpu: "H100".into(),
        curves: vec![
            curve("baseline", &rows[0].recipe.id, 1.0),
            curve("recommended", &best.recipe.id, 1.16),
        ],
    }
}

/// One chart of a report page, by its file stem.
fn chart<'a>(html: &'a str, stem: &str) -> &'a str {
    html.split(&format!("<section class=\"chart-{stem}\">"))
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or_else(|| panic!("no {stem} chart"))
}

#[test]
fn html_draws_the_frontier_the_cost_of_the_sla_and_the_latency_distributions() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rows, _) = rows();
    for r in &mut rows {
        r.measurement = r.measurement.take().map(with_distributions);
        for s in &mut r.samples {
            s.m = with_distributions(s.m.clone());
        }
    }
    // A reverted run inside the SLA whose answers fell under the floor stays a reverted
    // point; an inconclusive one past a p99 bound is drawn as a miss.
    let mut mark = |st: Status, ok: bool, slack: f64| {
        let r = rows.iter_mut().find(|r| r.status == st).unwrap();
        let m = r.measurement.as_mut().unwrap();
        (m.sla_ok, m.sla_slack) = (ok, Some(slack));
    };
    mark(Status::Reverted, false, 0.3);
    mark(Status::Inconclusive, false, -0.2);
    let dir = write_run(
        &tmp.path().join(".forge"),
        (14, 2),
        &rows,
        Some("every layer converged"),
        None,
    );
    let mut st = settings();
    st.slo.tpot_ms = Some(40.0);
    let config = serde_json::to_string_pretty(&st).unwrap();
    store::write_atomic(&dir.join(store::CONFIG_FILE), config.as_bytes()).unwrap();
    forge::record::frontier::write(&dir, &frontier(&rows)).unwrap();
    let html = report(tmp.path(), &dir, "html");
    for stem in [
        "pareto",
        "sla-cost",
        "latency-ttft",
        "latency-tpot",
        "latency-e2el",
    ] {
        let structure = svg_structure(chart(&html, stem));
        assert!(
            structure.lines().any(|l| l.starts_with("series ")
                && !l.contains(": 0 points, 0 intervals, 0 lines, 0 bars")),
            "{stem} has no data: {structure}"
        );
        insta::assert_snapshot!(format!("chart_{stem}"), structure);
    }
    // The SLA is drawn where it binds: 40 ms is 25 tokens/s a user.
    assert!(
        chart(&html, "pareto").contains("SLA: p99 TPOT ≤ 40 ms = 25 tok/s per user"),
        "{html}"
    );
    // The old bars of p50 and p99 give way to the distributions.
    assert!(!html.contains("class=\"chart-latency\""));
}

#[test]
fn compare_puts_two_runs_side_by_side_and_decides_nothing() {
    let f = Fixture::new();
    let run = |format: &str| {
        let out = forge(&["report", "--compare"])
            .args([&f.no_engine, &f.full])
            .args(["--format", format])
            .current_dir(f.tmp.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, table, err) = run("table");
    assert!(ok, "{err}");
    assert!(
        table.contains("+15.1 % [+12.0, +18.3] (confirmed side by side)"),
        "{table}"
    );
    assert!(
        table.contains("forge decides nothing between them"),
        "{table}"
    );
    insta::assert_snapshot!("report_compare", table);
    let (ok, md, err) = run("md");
    assert!(ok && md.starts_with("# Two runs side by side"), "{err}{md}");
    let (ok, html, err) = run("html");
    assert!(
        ok && html.contains("<h1>Two runs side by side</h1>"),
        "{err}"
    );
    assert!(!html.contains("<script"));
    let (ok, _, err) = run("json");
    assert!(
        !ok && err.contains("--compare prints a table, Markdown or HTML"),
        "{err}"
    );
}

#[test]
fn costs_are_priced_at_the_built_in_table_or_at_gpu_hour_usd() {
    let f = Fixture::new();
    let table = f.report(&f.full, "table");
    assert!(
        table.contains("at $3.99 per GPU-hour (H100: Lambda on-demand, 8× H100 SXM, per GPU, lambda.ai/instances, read 2026-09; --gpu-hour-usd overrides)"),
        "{table}"
    );
    let out = forge(&["report", "--gpu-hour-usd", "2"])
        .arg(&f.full)
        .current_dir(f.tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // 2 $/h ÷ (1520.5 tok/s × 3600 s/h) × 10⁶ tokens.
    assert!(
        text.contains("Cost per million output tokens: baseline $0.365"),
        "{text}"
    );
    assert!(
        text.contains("at $2.00 per GPU-hour (--gpu-hour-usd)"),
        "{text}"
    );
    let out = forge(&["report", "--prices"]).output().unwrap();
    let prices = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("report_prices", prices);
}
