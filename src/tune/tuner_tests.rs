//! `Tuner::run` in process: the real loop, measuring by prediction (no process, no port),
//! on a real run directory.

use std::path::Path;

use super::*;
use crate::record::EngineChoice;
use crate::record::settings::test_settings;
use crate::tune::assemble::in_process;
use crate::tune::measure::{Predicted, SampleOutput};
use crate::workload::synth::{SynthSpec, generate, to_jsonl};

fn settings(dir: &Path, model: &str, gpu: &str) -> TuneSettings {
    let w = dir.join("w.jsonl");
    let requests = generate(&SynthSpec {
        input_len: 400,
        output_len: 40,
        num_prompts: 24,
        prefix_len: 0,
        range_ratio: 0.2,
        seed: 3,
    });
    std::fs::write(&w, to_jsonl(&requests)).unwrap();
    let mut s = test_settings();
    s.model = model.into();
    s.workload = w;
    s.llm = "builtin".into();
    s.dry_run = true;
    s.max_experiments = 6;
    s.engine = EngineChoice::Sim {
        framework: crate::recipe::EngineKind::Vllm,
        gpu: gpu.into(),
        time_scale: 1.0,
        boot_time_scale: 1.0,
        noise_pct: 2.0,
    };
    s
}

fn llama(dir: &Path) -> TuneSettings {
    settings(dir, "meta-llama/Llama-3.1-8B-Instruct", "H100")
}

fn tuner(s: TuneSettings, run: &Path) -> Tuner<Predicted> {
    let mut t = in_process(s, run, 11).unwrap();
    t.echo = false;
    t
}

fn run(t: &mut Tuner<Predicted>) -> StopReason {
    futures::executor::block_on(t.run()).unwrap()
}

fn journal(run: &Path) -> Vec<ExperimentRow> {
    store::read_rows(&run.join(JOURNAL_FILE)).unwrap()
}

#[test]
fn a_baseline_that_cannot_boot_ends_the_run_with_its_class() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "meta-llama/Llama-3.1-70B", "L4");
    let mut t = tuner(s, &dir.path().join("run"));
    let reason = run(&mut t);
    assert!(
        matches!(&reason, StopReason::BaselineFailed { class, .. } if *class == FailureClass::InfeasibleOom),
        "{reason:?}"
    );
    assert!(!reason.confirms());
    futures::executor::block_on(t.finish(&reason)).unwrap();
    let rows = journal(&dir.path().join("run"));
    assert_eq!(rows.len(), 1, "nothing after a failed baseline");
    assert_eq!(rows[0].status, Status::Failed);
    assert_eq!(rows[0].exp, Some(0));
    let done: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run").join(COMPLETED_FILE)).unwrap(),
    )
    .unwrap();
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .starts_with("the baseline could not be measured (infeasible_oom: "),
        "{done}"
    );
}

#[test]
fn layers_escalate_when_a_layer_hits_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = llama(dir.path());
    s.layers = vec![Layer::Config, Layer::Quant];
    s.max_config_experiments = Some(3);
    s.max_experiments = 6;
    let mut t = tuner(s, &dir.path().join("run"));
    run(&mut t);
    let rows = &t.state.rows;
    let first_quant = rows
        .iter()
        .position(|r| r.layer == Layer::Quant)
        .expect("the quant layer ran");
    assert!(rows[first_quant..].iter().all(|r| r.layer == Layer::Quant));
    let config_experiments = rows[..first_quant]
        .iter()
        .filter(|r| r.status.is_experiment())
        .count();
    assert!(config_experiments <= 3, "{config_experiments}");
    assert!(
        rows[first_quant..].iter().any(|r| r.status.is_experiment()),
        "a quant candidate was measured"
    );
}

#[test]
fn each_budget_stops_the_run_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = llama(dir.path());
    s.max_experiments = 3;
    let mut t = tuner(s.clone(), &dir.path().join("experiments"));
    assert_eq!(run(&mut t), StopReason::ExperimentBudget(3));
    assert_eq!(t.state.experiments_used, 3);
    let ids = |rows: &[ExperimentRow]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&journal(&dir.path().join("experiments"))),
        ids(&t.state.rows)
    );

    s.max_experiments = 50;
    s.max_hours = 1e-12;
    let mut t = tuner(s.clone(), &dir.path().join("hours"));
    let reason = run(&mut t);
    assert_eq!(reason, StopReason::TimeBudget(1e-12));
    assert!(!reason.confirms(), "no confirmation once the time is spent");
    assert_eq!(t.state.experiments_used, 1);

    s.max_hours = 12.0;
    s.max_dollars = Some(0.0);
    let mut t = tuner(s, &dir.path().join("dollars"));
    assert_eq!(run(&mut t), StopReason::SpendCap(0.0));
}

#[test]
fn a_resumed_run_continues_its_journal_as_if_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = llama(dir.path());
    s.max_experiments = 5;
    let whole = dir.path().join("whole");
    let mut t = tuner(s.clone(), &whole);
    assert_eq!(run(&mut t), StopReason::ExperimentBudget(5));

    let parts = dir.path().join("parts");
    s.max_experiments = 3;
    let mut t = tuner(s.clone(), &parts);
    run(&mut t);
    // A crash mid-append leaves a torn line: resume cuts it and redoes that experiment.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(parts.join(JOURNAL_FILE))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\": 9, \"id\": \"torn").unwrap();
    s.max_experiments = 5;
    let mut t = tuner(s, &parts);
    assert_eq!(
        t.state.experiments_used, 3,
        "state rebuilt from the journal"
    );
    assert_eq!(run(&mut t), StopReason::ExperimentBudget(5));

    let key = |r: &ExperimentRow| {
        (
            r.seq,
            r.id.clone(),
            r.status,
            r.interval,
            r.log_ratios.clone(),
        )
    };
    let (a, b) = (journal(&whole), journal(&parts));
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        b.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(b.iter().filter(|r| r.status == Status::Baseline).count(), 1);
}

#[test]
fn an_illegal_proposal_is_refused_without_spending_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let t = tuner(llama(dir.path()), &dir.path().join("run"));
    let p = Proposal {
        rationale: "too much memory".into(),
        layer: Layer::Config,
        changes: [(
            "gpu_memory_utilization".to_string(),
            serde_json::json!(0.99),
        )]
        .into(),
        expected_throughput_delta_pct: None,
        expected_accuracy_delta: None,
        cost_usd: 0.0,
        from_surrogate: false,
        rejected: Vec::new(),
    };
    let why = t.illegal(&t.baseline, &p).unwrap_err();
    assert_eq!(why.knob.as_deref(), Some("gpu_memory_utilization"));
    let row = t.rejected_row(&p, why);
    assert_eq!(row.status, Status::Rejected);
    assert!(!row.status.is_experiment());
    assert!(row.failure.unwrap().summary.contains("outside"));
}

/// The in-process measure, except that in the end-of-run confirmation every recipe but
/// the baseline runs at half speed (a machine that drifted, a kept recipe that was lucky).
struct WorseWhenConfirmed {
    inner: Predicted,
    baseline: String,
}

impl Measure for WorseWhenConfirmed {
    fn sample(
        &mut self,
        recipe: &Recipe,
        tag: &str,
    ) -> impl std::future::Future<Output = Result<SampleOutput, Failure>> + Send {
        let slow = tag.contains("-confirm") && recipe.id != self.baseline;
        let inner = self.inner.sample(recipe, tag);
        async move {
            inner.await.map(|mut o| {
                if slow {
                    o.result.output_throughput *= 0.5;
                }
                o
            })
        }
    }
}

#[test]
fn a_recipe_the_confirmation_finds_worse_is_never_recommended() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = llama(dir.path());
    s.layers = vec![Layer::Quant];
    s.max_experiments = 4;
    // FP8 changes ~2 % of these short answers' tokens: let the floor allow it.
    s.accuracy_floor = 0.95;
    let run_dir = dir.path().join("run");
    let t = tuner(s, &run_dir);
    let baseline = t.baseline.id.clone();
    let measure = WorseWhenConfirmed {
        inner: t.measure,
        baseline: baseline.clone(),
    };
    let mut t = Tuner {
        measure,
        settings: t.settings,
        dir: t.dir,
        state: t.state,
        engine: t.engine,
        agent: t.agent,
        playbook: t.playbook,
        workload: t.workload,
        stats: t.stats,
        gpu: t.gpu,
        sim: t.sim,
        baseline: t.baseline,
        refs: t.refs,
        echo: false,
    };
    let reason = futures::executor::block_on(t.run()).unwrap();
    assert!(
        t.state.rows.iter().any(|r| r.status == Status::Kept),
        "fp8 is kept in the quant layer"
    );
    futures::executor::block_on(t.finish(&reason)).unwrap();
    let rows = journal(&run_dir);
    let confirmations: Vec<&ExperimentRow> = rows
        .iter()
        .filter(|r| r.status == Status::Confirmation)
        .collect();
    assert!(!confirmations.is_empty());
    assert!(confirmations.iter().all(|r| r.confirmed == Some(false)));
    assert!(confirmations[0].rationale.contains("falls back"));
    let rec = crate::record::recommended(&rows).unwrap();
    assert_eq!(
        rec.recipe.id, baseline,
        "the baseline, since nothing held up"
    );
    let yaml = std::fs::read_to_string(run_dir.join(crate::store::BEST_RECIPE_FILE)).unwrap();
    assert!(
        yaml.starts_with("# recommended recipe: the engine's defaults"),
        "{yaml}"
    );
}

#[test]
fn defaults_that_do_not_boot_give_a_derived_baseline_that_a_resume_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut s = settings(dir.path(), "meta-llama/Llama-3.1-8B-Instruct", "L4");
    s.max_experiments = 3;
    let mut t = tuner(s.clone(), &run_dir);
    let reason = run(&mut t);
    assert!(
        !matches!(reason, StopReason::BaselineFailed { .. }),
        "{reason:?}"
    );
    let rows = journal(&run_dir);
    assert_eq!(rows[0].status, Status::Failed);
    let f = rows[0].failure.as_ref().unwrap();
    assert_eq!(f.class, FailureClass::InfeasibleOom);
    assert!(
        rows[0].recipe.config.is_empty(),
        "the defaults were tried first"
    );
    assert_eq!(rows[1].status, Status::Baseline);
    // The longest request (about 500 tokens) rounded up, at least 2,048.
    assert_eq!(rows[1].recipe.config["max_model_len"], 2048);
    assert_eq!((rows[0].exp, rows[1].exp), (Some(0), Some(0)));
    assert_eq!(t.state.experiments_used, 3, "the baseline counts once");
    // A resumed run measures against the derived baseline, not the defaults.
    let again = tuner(s, &run_dir);
    assert_eq!(again.baseline.id, rows[1].recipe.id);
}

#[test]
fn a_kept_quantization_above_the_floor_holds_up_at_the_confirmation() {
    // The confirmation compares against the baseline: the kept recipe's accuracy (below
    // 1 by design) is judged against the baseline's, not against itself a second time.
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut s = llama(dir.path());
    s.layers = vec![Layer::Quant];
    s.max_experiments = 4;
    // fp8 answers agree about 98 % with the baseline's on this workload.
    s.accuracy_floor = 0.97;
    let mut t = tuner(s, &run_dir);
    let reason = run(&mut t);
    futures::executor::block_on(t.finish(&reason)).unwrap();
    let rows = journal(&run_dir);
    let kept = rows
        .iter()
        .find(|r| r.status == Status::Kept && r.recipe.quant.method.is_some())
        .unwrap_or_else(|| {
            panic!(
                "no quantization kept: {:#?}",
                rows.iter()
                    .map(|r| (r.status, r.rationale.clone(), r.interval))
                    .collect::<Vec<_>>()
            )
        });
    let acc = t.state.incumbent.as_ref().unwrap().accuracy;
    assert!((0.97..0.995).contains(&acc), "{acc}");
    let confirmation = rows.last().unwrap();
    assert_eq!(confirmation.status, Status::Confirmation);
    assert_eq!(confirmation.recipe.id, kept.recipe.id);
    assert_eq!(
        confirmation.confirmed,
        Some(true),
        "{}",
        confirmation.rationale
    );
}

#[test]
fn the_predicted_frontier_rises_in_throughput_and_falls_in_speed_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let s = llama(dir.path());
    let t = tuner(s, &dir.path().join("run"));
    let (sim, gpu) = (t.sim.as_ref().unwrap(), t.gpu.unwrap());
    std::fs::create_dir_all(&t.dir).unwrap();
    crate::tune::frontier::baseline(&t.dir, sim, gpu, &t.baseline);
    let f = crate::record::frontier::read(&t.dir).unwrap();
    assert_eq!(f.gpu, "H100");
    let c = &f.curves[0];
    assert_eq!(
        (c.label.as_str(), c.recipe_id.as_str()),
        ("baseline", t.baseline.id.as_str())
    );
    // Levels up to the workload's 24 requests: 1, 2, 4, 8, 16.
    let levels: Vec<usize> = c.points.iter().map(|p| p.concurrency).collect();
    assert_eq!(levels, [1, 2, 4, 8, 16]);
    for w in c.points.windows(2) {
        assert!(w[1].output_throughput > w[0].output_throughput, "{w:?}");
        assert!(w[1].median_tpot_ms >= w[0].median_tpot_ms, "{w:?}");
    }
    // A resumed run keeps the curve it has.
    let before = std::fs::metadata(t.dir.join(crate::record::frontier::FRONTIER_FILE))
        .and_then(|m| m.modified())
        .unwrap();
    crate::tune::frontier::baseline(&t.dir, sim, gpu, &t.baseline);
    let after = std::fs::metadata(t.dir.join(crate::record::frontier::FRONTIER_FILE))
        .and_then(|m| m.modified())
        .unwrap();
    assert_eq!(before, after);
}
