//! Hardware: the GPU specification table that drives the memory model, the simulator and
//! the quantization gates.

pub mod gpus;

pub use gpus::{GpuSpec, Vendor};
