//! vLLM: the performance flags of `vllm serve`, their defaults as vLLM resolves them for a
//! GPU, and (in [`flags`]) their argv parsing and rendering.

pub mod adapter;
pub mod checked;
pub mod config;
pub mod flags;
pub mod help;
pub mod knobs;
pub mod logs;
pub mod probe;
pub mod recipe;
pub mod version;

pub use config::{KvCacheDtype, PerformanceMode, SchedulingPolicy, VllmArgs, VllmConfig};
pub use recipe::effective;
