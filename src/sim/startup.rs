//! Simulated startup time: what a vLLM server spends before it accepts connections.
//!
//! Process and engine init (~6 s, +3 s for NCCL when parallel), weight loading at ~2 GiB/s
//! per GPU from a warm page cache, the profile run (~2 s), torch.compile for `-O1` and up
//! (~14 s plus a quarter second per layer; `-O3` a third longer), CUDA-graph capture (~40 ms
//! per size and mode, more for deep models) and KV-cache allocation (~1 s). An eager 8B
//! model starts in ~18 s; the default `-O2` in ~45 s.

use super::cudagraph::{CudaGraphs, GraphMode};
use super::memory::GIB;

/// Startup phases, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Startup {
    /// Weight loading ("Model loading took ... and Y seconds").
    pub load: f64,
    /// torch.compile plus graph capture.
    pub graphs: f64,
    /// Everything before the server accepts connections.
    pub total: f64,
}

/// Estimate the startup phases.
pub fn estimate(
    weight_bytes_per_gpu: f64,
    layers: u32,
    graphs: &CudaGraphs,
    opt_level: u8,
    parallel: bool,
) -> Startup {
    let init = 6.0 + if parallel { 3.0 } else { 0.0 };
    let load = 1.5 + weight_bytes_per_gpu / (2.0 * GIB);
    let depth = f64::from(layers);
    let compile = match graphs.mode {
        GraphMode::Eager => 0.0,
        _ => (14.0 + 0.25 * depth) * if opt_level >= 3 { 1.3 } else { 1.0 },
    };
    let modes = if graphs.mode == GraphMode::FullAndPiecewise {
        2.0
    } else {
        1.0
    };
    let capture = graphs.sizes.len() as f64 * 0.04 * modes * (0.5 + depth / 64.0);
    let total = init + load + 2.0 + compile + capture + 1.0;
    Startup {
        load,
        graphs: compile + capture,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cudagraph::default_sizes;

    #[test]
    fn eager_starts_faster_than_compiled() {
        let w = 15.0 * GIB;
        let eager = CudaGraphs {
            mode: GraphMode::Eager,
            sizes: vec![],
        };
        let full = CudaGraphs {
            mode: GraphMode::FullAndPiecewise,
            sizes: default_sizes(512),
        };
        let e = estimate(w, 32, &eager, 0, false);
        let f = estimate(w, 32, &full, 2, false);
        assert!((15.0..20.0).contains(&e.total), "{}", e.total);
        assert!((35.0..60.0).contains(&f.total), "{}", f.total);
        assert_eq!(e.graphs, 0.0);
        assert!(estimate(w, 32, &full, 3, false).total > f.total);
        assert!(estimate(4.0 * w, 80, &full, 2, true).total > f.total);
    }
}
