//! The built-in vLLM simulator: a discrete-event model of vLLM V1's scheduler, KV cache
//! and step times (roofline), served over vLLM's HTTP API (`forge sim serve`) or run
//! offline to predict a config's metrics (`forge sim predict`).
//!
//! Layout: [`model`] and [`catalog`] give architecture numbers; [`quant`], [`validate`] and
//! [`memory`] decide whether and how a config boots; [`cudagraph`], [`spec`] and
//! [`roofline`] price one step; [`kv`] and [`scheduler`] decide what a step computes;
//! [`frontend`] is the API server's CPU; [`engine`] ties them into [`engine::SimEngine`];
//! [`predict`] replays a workload through it in simulated time.
//!
//! Serving: [`cli`] and [`options`] read the command line, [`boot`] starts the engine with
//! vLLM's startup log, [`driver`] runs it in real time on its own thread, [`server`],
//! [`request`] and [`sse`] speak vLLM's HTTP API, [`prom`] its `/metrics`, [`faults`] its
//! failure modes, [`vlog`] its log format, [`serve`] ties the lifecycle together.

pub mod boot;
pub mod catalog;
pub mod cudagraph;
pub mod driver;
pub mod engine;
pub mod fasthash;
pub mod faults;
pub mod frontend;
pub mod interface;
pub mod kv;
pub mod memory;
pub mod model;
pub mod options;
pub mod predict;
pub mod prom;
pub mod quant;
pub mod request;
pub mod roofline;
pub mod scheduler;
pub mod serve;
pub mod server;
pub mod spec;
pub mod sse;
pub mod startup;
pub mod validate;
pub mod vlog;
