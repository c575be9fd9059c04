//! CUDA-graph capture sizes and how a batch runs: which graph (if any) replays it, what
//! token count it is padded to, and how much host launch overhead each layer costs.
//!
//! vLLM (V1, `-O2` default = `FULL_AND_PIECEWISE`) captures sizes
//! `[1, 2, 4] + range(8, 256, 8) + range(256, max + 1, 16)` with
//! `max = min(2 · max_num_seqs, 512)` capped at `max_num_batched_tokens`
//! (`--max-cudagraph-capture-size` or an explicit `--cudagraph-capture-sizes` override it).
//! A uniform decode batch replays a FULL graph; a mixed prefill/decode batch a PIECEWISE one
//! (attention runs between graph pieces); both are padded up to the next captured size.
//! Above the largest size, or with `-O0`/`--enforce-eager`, no graph runs and per-layer
//! launch overhead returns. `-O1` captures PIECEWISE graphs only.
//!
//! `--performance-mode interactivity` captures finer-grained sizes (every size up to 32);
//! `throughput` keeps the default sizes (its larger batch limits are applied to the
//! resolved config by the flag parser, not here).

use crate::engine::vllm::{PerformanceMode, VllmConfig};

/// Which CUDA-graph modes the engine captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphMode {
    /// No graphs (`-O0`, `--enforce-eager`).
    Eager,
    /// Piecewise graphs only (`-O1`).
    Piecewise,
    /// Full graphs for uniform decode, piecewise otherwise (`-O2`, `-O3`).
    FullAndPiecewise,
}

/// How one batch executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Whole forward replayed as one graph: no per-layer host overhead.
    FullGraph,
    /// Graph pieces around attention: small per-layer overhead.
    PiecewiseGraph,
    /// torch.compile'd code launched without graphs.
    Compiled,
    /// Plain PyTorch eager launches.
    Eager,
}

/// The engine's graph configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CudaGraphs {
    /// Captured modes.
    pub mode: GraphMode,
    /// Captured token counts, ascending (empty when eager).
    pub sizes: Vec<u32>,
}

/// vLLM's default capture list up to `max`.
pub fn default_sizes(max: u32) -> Vec<u32> {
    let mut v = vec![1, 2, 4];
    v.extend((8..256).step_by(8));
    v.extend((256..=max.max(256)).step_by(16));
    v.retain(|&s| s <= max);
    v
}

impl CudaGraphs {
    /// The graph setup a resolved config implies.
    pub fn from_config(c: &VllmConfig) -> CudaGraphs {
        let mode = match (c.enforce_eager, c.optimization_level) {
            (true, _) | (false, 0) => GraphMode::Eager,
            (false, 1) => GraphMode::Piecewise,
            _ => GraphMode::FullAndPiecewise,
        };
        if mode == GraphMode::Eager {
            return CudaGraphs {
                mode,
                sizes: Vec::new(),
            };
        }
        CudaGraphs {
            mode,
            sizes: capture_sizes(c),
        }
    }

    /// Largest captured size (0 when eager).
    pub fn max_size(&self) -> u32 {
        self.sizes.last().copied().unwrap_or(0)
    }

    /// Padded token count and launch kind for a batch of `tokens` tokens;
    /// `uniform_decode` is true when every request decodes the same number of tokens.
    pub fn plan(&self, tokens: u32, uniform_decode: bool) -> (u32, Launch) {
        if self.mode == GraphMode::Eager {
            return (tokens, Launch::Eager);
        }
        match self.sizes.iter().find(|&&s| s >= tokens) {
            None => (tokens, Launch::Compiled),
            Some(&pad) => {
                let full = uniform_decode && self.mode == GraphMode::FullAndPiecewise;
                let kind = if full {
                    Launch::FullGraph
                } else {
                    Launch::PiecewiseGraph
                };
                (pad, kind)
            }
        }
    }
}

fn capture_sizes(c: &VllmConfig) -> Vec<u32> {
    let cap = c.max_num_batched_tokens.max(1);
    if let Some(explicit) = &c.cudagraph_capture_sizes {
        let mut v: Vec<u32> = explicit
            .iter()
            .copied()
            .filter(|&s| s > 0 && s <= cap)
            .collect();
        v.sort_unstable();
        v.dedup();
        return v;
    }
    let max = c
        .max_cudagraph_capture_size
        .unwrap_or_else(|| (2 * c.max_num_seqs).min(512))
        .min(cap);
    let mut v = default_sizes(max);
    if c.performance_mode == PerformanceMode::Interactivity {
        v.extend(1..=32u32.min(max));
        v.sort_unstable();
        v.dedup();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vllm::VllmArgs;
    use crate::hardware::gpus::lookup;

    fn config(args: VllmArgs) -> VllmConfig {
        VllmArgs {
            model: "m".into(),
            ..args
        }
        .resolve(lookup("H100").unwrap())
    }

    #[test]
    fn default_sizes_follow_vllm() {
        let s = default_sizes(512);
        assert_eq!(&s[..5], &[1, 2, 4, 8, 16]);
        // 3 + 31 (8..248) + 17 (256..512 step 16) = 51.
        assert_eq!(s.len(), 51);
        assert_eq!(*s.last().unwrap(), 512);
        assert_eq!(default_sizes(100).last(), Some(&96));
    }

    #[test]
    fn h100_default_captures_up_to_512_and_pads() {
        // max_num_seqs 1024 → min(2048, 512) = 512, below the 8192 token budget.
        let g = CudaGraphs::from_config(&config(VllmArgs::default()));
        assert_eq!(g.mode, GraphMode::FullAndPiecewise);
        assert_eq!(g.max_size(), 512);
        assert_eq!(g.plan(3, true), (4, Launch::FullGraph));
        assert_eq!(g.plan(257, true), (272, Launch::FullGraph));
        assert_eq!(g.plan(100, false), (104, Launch::PiecewiseGraph));
        assert_eq!(g.plan(513, true), (513, Launch::Compiled));
    }

    #[test]
    fn small_max_num_seqs_and_overrides() {
        let g = CudaGraphs::from_config(&config(VllmArgs {
            max_num_seqs: Some(16),
            ..Default::default()
        }));
        assert_eq!(g.sizes, vec![1, 2, 4, 8, 16, 24, 32]);
        let g = CudaGraphs::from_config(&config(VllmArgs {
            max_cudagraph_capture_size: Some(64),
            ..Default::default()
        }));
        assert_eq!(g.max_size(), 64);
        let g = CudaGraphs::from_config(&config(VllmArgs {
            cudagraph_capture_sizes: Some(vec![8, 1, 4, 8]),
            ..Default::default()
        }));
        assert_eq!(g.sizes, vec![1, 4, 8]);
        let g = CudaGraphs::from_config(&config(VllmArgs {
            enforce_eager: Some(true),
            ..Default::default()
        }));
        assert!(g.sizes.is_empty());
        assert_eq!(g.plan(7, true), (7, Launch::Eager));
        let g = CudaGraphs::from_config(&config(VllmArgs {
            optimization_level: Some(1),
            ..Default::default()
        }));
        assert_eq!(g.plan(7, true), (8, Launch::PiecewiseGraph));
    }

    #[test]
    fn interactivity_mode_captures_every_small_size() {
        let g = CudaGraphs::from_config(&config(VllmArgs {
            performance_mode: Some(PerformanceMode::Interactivity),
            ..Default::default()
        }));
        assert_eq!(g.plan(3, true), (3, Launch::FullGraph));
        assert_eq!(g.plan(33, true), (40, Launch::FullGraph));
    }
}
