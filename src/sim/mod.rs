//! The built-in vLLM simulator: a discrete-event model of vLLM V1's scheduler, KV cache
//! and step times (roofline), served over vLLM's HTTP API (`forge sim serve`) or run
//! offline to predict a config's metrics (`forge sim predict`).

pub mod cli;
pub mod engine;
pub mod model;
