//! The in-process [`Measure`]: a recipe "measured" by the simulator's offline predictor —
//! what `forge bench` would read from `forge sim serve` with the same config — with the
//! configured run-to-run noise, the server facts `/metrics` would have shown, and the text
//! the simulated server would have answered (so accuracy is judged as in a dry run). No
//! process, no port, no clock: a run takes milliseconds, which is what lets the loop be
//! unit-tested and benchmarked, and the gate search many candidates.
//!
//! Each run's noise comes from a seed derived from the run's tag, so a run is reproducible
//! and a resumed run measures its redone experiment as the first attempt would have.

use std::hash::Hasher;

use twox_hash::XxHash64;

use super::{Measure, SampleOutput};
use crate::bench::{LoadSpec, metrics::BenchResult};
use crate::engine::failure::{Failure, FailureClass};
use crate::hardware::GpuSpec;
use crate::recipe::Recipe;
use crate::sim::engine::BootError;
use crate::sim::model::ModelShape;
use crate::sim::predict::{predict_observed, prompt_tokens};
use crate::tokenize::{output_piece, perturbed_piece, text_seed};
use crate::tune::surrogate::{SimRun, setup_for};
use crate::workload::WorkloadRequest;

/// Measures by prediction.
pub struct Predicted {
    shape: ModelShape,
    gpu: &'static GpuSpec,
    model: String,
    requests: Vec<WorkloadRequest>,
    /// Seed of each request's answer text (a function of its prompt, as the server's).
    text_seeds: Vec<u64>,
    load: LoadSpec,
    noise_pct: f64,
    seed: u64,
    /// Share of answer tokens that come out differently from run to run (0 = greedy
    /// decoding that does not depend on batching, as vLLM's does).
    answer_noise: f64,
}

impl Predicted {
    /// Predict `model` on `gpu` replaying `requests` under `load`, with `noise_pct` run-to-run
    /// noise drawn from `seed`. Fails when the simulator does not know the model.
    pub fn new(
        model: &str,
        gpu: &'static GpuSpec,
        requests: Vec<WorkloadRequest>,
        load: &LoadSpec,
        noise_pct: f64,
        seed: u64,
    ) -> anyhow::Result<Predicted> {
        let shape = ModelShape::resolve(model).map_err(anyhow::Error::msg)?;
        let text_seeds = requests
            .iter()
            .map(|r| text_seed(&prompt_tokens(r, load.endpoint)))
            .collect();
        let mut load = load.clone();
        load.time_scale = 1.0;
        Ok(Predicted {
            shape,
            gpu,
            model: model.to_string(),
            requests,
            text_seeds,
            load,
            noise_pct,
            seed,
            answer_noise: 0.0,
        })
    }

    /// The same measure with answers that vary from run to run: a `share` of tokens (0..1)
    /// come out differently in each run, as batch-dependent numerics make them on
    /// llama.cpp. For studying verdicts on an engine whose accuracy reading is noisy.
    pub fn with_answer_noise(mut self, share: f64) -> Predicted {
        self.answer_noise = share.clamp(0.0, 1.0);
        self
    }

    /// The noise seed of the run named `tag`.
    fn run_seed(&self, tag: &str) -> u64 {
        let mut h = XxHash64::with_seed(self.seed);
        h.write(tag.as_bytes());
        h.finish()
    }

    fn run(&self, recipe: &Recipe, tag: &str) -> Result<SampleOutput, Failure> {
        let run_seed = self.run_seed(tag);
        let run = SimRun {
            seed: run_seed,
            noise_pct: self.noise_pct,
            vllm: crate::engine::vllm::flags::Version::CURRENT,
        };
        let setup = setup_for(&self.shape, self.gpu, &self.model, recipe, run)
            .map_err(|e| failure(FailureClass::InfeasibleConfig, e.why))?;
        // A checkpoint's quantization changes the text; the base model's own does not (it
        // is what the references were written with).
        let checkpoint = recipe.quant.checkpoint.as_ref();
        let quant = checkpoint.and(setup.setup.model.quant.as_ref());
        let rate = crate::sim::quant::text_perturbation(&setup.args, quant);
        let (result, facts) = predict_observed(
            setup.setup,
            &self.requests,
            &self.load,
            "forge-predicted",
            true,
        )
        .map_err(|e| match e {
            BootError::Oom(m) => failure(FailureClass::InfeasibleOom, m),
            BootError::Config(m) => failure(FailureClass::InfeasibleConfig, m),
        })?;
        if result.completed == 0 {
            let why = result.failure_examples.first().cloned().unwrap_or_default();
            return Err(failure(
                FailureClass::CrashedDuringBench,
                format!("no request completed ({why})"),
            ));
        }
        let answers = self.answers(&result, rate, run_seed);
        Ok(SampleOutput {
            result,
            facts,
            answers,
            log: String::new(),
        })
    }

    /// The text the simulated server would have streamed for each request (in run
    /// `run_seed`, which matters only with answer noise).
    fn answers(&self, r: &BenchResult, rate: f64, run_seed: u64) -> Vec<String> {
        let Some(d) = &r.detailed else {
            return Vec::new();
        };
        d.output_lens
            .iter()
            .zip(&self.text_seeds)
            .zip(&d.errors)
            .map(|((&n, &seed), err)| {
                if !err.is_empty() {
                    return String::new();
                }
                (0..n as u32)
                    .map(|i| self.piece(seed, i, rate, run_seed))
                    .collect()
            })
            .collect()
    }
}

impl Predicted {
    /// Token `i` of the answer whose text seed is `seed`: the config's perturbation, and in
    /// a share of positions drawn per run, another word.
    fn piece(&self, seed: u64, i: u32, rate: f64, run_seed: u64) -> &'static str {
        if self.answer_noise > 0.0 {
            let mut h = XxHash64::with_seed(run_seed ^ seed);
            h.write_u32(i);
            if (h.finish() % 1_000_000) as f64 / 1e6 < self.answer_noise {
                return output_piece(seed.wrapping_add(2), i);
            }
        }
        perturbed_piece(seed, i, rate)
    }
}

fn failure(class: FailureClass, summary: String) -> Failure {
    Failure {
        class,
        exit_code: None,
        signal: None,
        summary,
        hints: vec![],
    }
}

impl Measure for Predicted {
    fn sample(
        &mut self,
        recipe: &Recipe,
        tag: &str,
    ) -> impl std::future::Future<Output = Result<SampleOutput, Failure>> + Send {
        let out = self.run(recipe, tag);
        async move { out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::gpus::lookup;
    use crate::recipe::{EngineKind, Hardware, Layer};
    use crate::workload::synth::{SynthSpec, generate};
    use serde_json::json;

    fn predicted(noise: f64) -> Predicted {
        let requests = generate(&SynthSpec {
            input_len: 500,
            output_len: 50,
            num_prompts: 32,
            prefix_len: 0,
            range_ratio: 0.2,
            seed: 1,
        });
        let load = LoadSpec {
            concurrency: Some(8),
            ..LoadSpec::default()
        };
        let gpu = lookup("H100").unwrap();
        Predicted::new(
            "meta-llama/Llama-3.1-8B-Instruct",
            gpu,
            requests,
            &load,
            noise,
            7,
        )
        .unwrap()
    }

    fn base() -> Recipe {
        Recipe::baseline(
            EngineKind::Vllm,
            "meta-llama/Llama-3.1-8B-Instruct",
            Hardware::default(),
        )
    }

    #[test]
    fn a_run_is_reproducible_by_tag_and_noisy_across_tags() {
        let p = predicted(3.0);
        let a = p.run(&base(), "e0001-c1").unwrap();
        let b = p.run(&base(), "e0001-c1").unwrap();
        let c = p.run(&base(), "e0001-i1").unwrap();
        assert_eq!(a.result.output_throughput, b.result.output_throughput);
        assert_ne!(a.result.output_throughput, c.result.output_throughput);
        assert_eq!(a.result.completed, 32);
        assert!(
            a.facts.available && a.facts.peak_running >= 1.0,
            "{:?}",
            a.facts
        );
        assert_eq!(a.answers.len(), 32);
        // Same prompt, same config: the same answer, as greedy decoding gives.
        assert_eq!(a.answers, c.answers);
        assert!(!a.answers[0].is_empty());
    }

    #[test]
    fn failures_are_classified_and_quantization_changes_answers() {
        let p = predicted(0.0);
        let huge = base().mutate(
            Layer::Config,
            &[("max_model_len".to_string(), json!(10_000_000))].into(),
        );
        let f = p.run(&huge, "e0002-c1").unwrap_err();
        assert!(f.class.is_infeasible(), "{f:?}");
        let fp8 = base().mutate(Layer::Quant, &[("method".to_string(), json!("fp8"))].into());
        let (a, q) = (p.run(&base(), "x").unwrap(), p.run(&fp8, "x").unwrap());
        assert_ne!(a.answers, q.answers);
        assert!(q.result.output_throughput > a.result.output_throughput);
    }
}
