//! Serving engines: their configuration surfaces (flags, defaults, validation) and, later,
//! their lifecycles behind the `Engine` trait.

pub mod failure;
pub mod health;
pub mod metrics;
pub mod process;
pub mod vllm;
