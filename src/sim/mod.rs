//! The built-in vLLM simulator: a discrete-event model of vLLM V1's scheduler, KV cache
//! and step times (roofline), served over vLLM's HTTP API (`forge sim serve`) or run
//! offline to predict a config's metrics (`forge sim predict`).

pub mod boot;
pub mod cli;
pub mod driver;
pub mod engine;
pub mod faults;
pub mod model;
pub mod options;
pub mod prom;
pub mod request;
pub mod serve;
pub mod server;
pub mod sse;
pub mod vlog;
