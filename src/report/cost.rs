//! What a run's baseline and recommended recipe cost per million output tokens at a
//! GPU-hour price: `--gpu-hour-usd`, or a small built-in table of public on-demand prices
//! per GPU type — each row with who charges it, where it is stated and when it was read,
//! because these prices move by tens of percent within months.

use serde::Serialize;

use super::{LoadedRun, RunSummary};
use crate::record::EngineChoice;

/// A public on-demand price for one GPU type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// The GPU, as forge's GPU table names it.
    pub gpu: &'static str,
    /// US dollars per GPU per hour.
    pub usd_per_gpu_hour: f64,
    /// Who charges it, for what.
    pub offering: &'static str,
    /// Where it is stated.
    pub source: &'static str,
    /// When the source was read (year-month).
    pub as_of: &'static str,
}

/// Built-in prices: one on-demand offering per GPU type, per GPU (an 8-GPU machine's price
/// divided by 8 where the provider states it so). Bare machines where a source was found;
/// the T4 and L4 rows are a managed endpoint's price (no bare-machine price was found), so
/// they run high.
pub const PRICES: [Price; 10] = [
    Price {
        gpu: "H100",
        usd_per_gpu_hour: 3.99,
        offering: "Lambda on-demand, 8× H100 SXM, per GPU",
        source: "lambda.ai/instances",
        as_of: "2026-09",
    },
    Price {
        gpu: "H200",
        usd_per_gpu_hour: 4.59,
        offering: "RunPod Secure Cloud pod, H200 141 GB",
        source: "runpod.io/pricing",
        as_of: "2026-10",
    },
    Price {
        gpu: "A100-80GB",
        usd_per_gpu_hour: 2.79,
        offering: "Lambda on-demand, 8× A100 SXM 80 GB, per GPU",
        source: "lambda.ai/instances",
        as_of: "2026-09",
    },
    Price {
        gpu: "A100-40GB",
        usd_per_gpu_hour: 1.99,
        offering: "Lambda on-demand, 8× A100 SXM 40 GB, per GPU",
        source: "lambda.ai/instances",
        as_of: "2026-09",
    },
    Price {
        gpu: "L40S",
        usd_per_gpu_hour: 1.09,
        offering: "RunPod Secure Cloud pod, L40S",
        source: "runpod.io/pricing",
        as_of: "2026-09",
    },
    Price {
        gpu: "L4",
        usd_per_gpu_hour: 0.80,
        offering: "Hugging Face Inference Endpoints, AWS nvidia-l4 ×1 (managed)",
        source: "huggingface.co/docs/inference-endpoints/support/pricing",
        as_of: "2026-05",
    },
    Price {
        gpu: "A10G",
        usd_per_gpu_hour: 1.29,
        offering: "Lambda on-demand, 1× A10 24 GB",
        source: "lambda.ai/instances",
        as_of: "2026-09",
    },
    Price {
        gpu: "T4",
        usd_per_gpu_hour: 0.50,
        offering: "Hugging Face Inference Endpoints, AWS nvidia-t4 ×1 (managed)",
        source: "huggingface.co/docs/inference-endpoints/support/pricing",
        as_of: "2026-05",
    },
    Price {
        gpu: "B200",
        usd_per_gpu_hour: 6.69,
        offering: "Lambda on-demand, 8× B200 SXM6, per GPU",
        source: "lambda.ai/instances",
        as_of: "2026-09",
    },
    Price {
        gpu: "MI300X",
        usd_per_gpu_hour: 1.99,
        offering: "DigitalOcean GPU Droplet, MI300X",
        source: "docs.digitalocean.com/products/droplets/details/pricing",
        as_of: "2026-05",
    },
];

/// The built-in price of `gpu` (any name forge's GPU table accepts).
pub fn builtin(gpu: &str) -> Option<&'static Price> {
    let name = crate::hardware::gpus::lookup(gpu)?.name;
    PRICES.iter().find(|p| p.gpu == name)
}

/// A run's cost per million output tokens, baseline and recommended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// The price used, US dollars per GPU per hour.
    pub usd_per_gpu_hour: f64,
    /// Where the price comes from (`--gpu-hour-usd`, or the built-in row).
    pub price_source: String,
    /// The baseline's median throughput, priced.
    pub baseline_usd_per_mtok: Option<f64>,
    /// The recommended recipe's median throughput, priced.
    pub recommended_usd_per_mtok: Option<f64>,
}

/// Dollars per million output tokens at `tok_s` on `gpus` GPUs at `usd` per GPU-hour.
pub fn per_million(tok_s: f64, gpus: u32, usd: f64) -> Option<f64> {
    (tok_s > 0.0).then(|| usd * f64::from(gpus.max(1)) / (tok_s * 3600.0) * 1e6)
}

/// The GPU a run tuned on, by name (the simulated one in a dry run).
pub fn gpu_of(run: &LoadedRun) -> Option<String> {
    let st = run.settings.as_ref()?;
    match &st.engine {
        EngineChoice::Sim { gpu, .. } => Some(gpu.clone()),
        _ => st.hardware.as_ref().map(|h| h.gpu_type.clone()),
    }
}

/// The cost of `run` at `usd` per GPU-hour, else at its GPU's built-in price; `None` with
/// neither, or nothing measured.
pub fn of(run: &LoadedRun, s: &RunSummary, usd: Option<f64>) -> Option<Cost> {
    let (usd, source) = match usd {
        Some(u) => (u, "--gpu-hour-usd".to_string()),
        None => {
            let gpu = gpu_of(run)?;
            let p = builtin(&gpu)?;
            (
                p.usd_per_gpu_hour,
                format!("{}: {}, {}, read {}", p.gpu, p.offering, p.source, p.as_of),
            )
        }
    };
    let gpus = |id: Option<&str>| {
        run.rows
            .iter()
            .find(|r| Some(r.recipe.id.as_str()) == id)
            .map_or(1, |r| r.recipe.hardware.count)
    };
    let base_id = run
        .rows
        .iter()
        .find(|r| r.status == crate::record::Status::Baseline)
        .map(|r| r.recipe.id.as_str());
    let price = |tput: Option<f64>, id| per_million(tput?, gpus(id), usd);
    let cost = Cost {
        usd_per_gpu_hour: usd,
        price_source: source,
        baseline_usd_per_mtok: price(s.baseline.throughput, base_id),
        recommended_usd_per_mtok: price(s.recommended.throughput, s.recommended_id.as_deref()),
    };
    cost.baseline_usd_per_mtok.is_some().then_some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_tokens_at_1000_tok_s_on_one_gpu_at_3_60_an_hour_cost_a_dollar() {
        let c = per_million(1000.0, 1, 3.6).unwrap();
        assert!((c - 1.0).abs() < 1e-12, "{c}");
        // Two GPUs at the same throughput cost twice as much per token.
        assert!((per_million(1000.0, 2, 3.6).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(per_million(0.0, 1, 3.6), None);
    }

    #[test]
    fn every_built_in_price_names_a_gpu_forge_knows_and_looks_up_by_its_aliases() {
        for p in PRICES {
            assert_eq!(
                crate::hardware::gpus::lookup(p.gpu).map(|g| g.name),
                Some(p.gpu)
            );
            assert!(p.usd_per_gpu_hour > 0.0 && !p.source.is_empty());
        }
        assert_eq!(builtin("a100_80gb").map(|p| p.gpu), Some("A100-80GB"));
        assert_eq!(builtin("H100-PCIe"), None);
    }
}
