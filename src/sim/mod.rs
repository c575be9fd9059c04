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
//! vLLM's startup log, [`driver`] runs it in real time on its own thread, [`server`] speaks
//! vLLM's HTTP API: [`request`] reads bodies ([`body`] their fields, [`sampling`] the
//! sampling options, [`unsupported`] refuses what cannot be simulated, [`api_error`] the
//! 400s), [`stop`] applies stop strings, [`logprobs`] simulates log probabilities,
//! [`flow`] and [`sse`] build the responses, [`reply`] the error replies,
//! [`tokenize_api`] serves `/tokenize` and `/detokenize`; [`prom`] is its `/metrics`,
//! [`faults`] its failure modes, [`vlog`] its log format, [`profile`] its
//! `/start_profile`/`/stop_profile` (a Chrome trace of the predicted kernels), [`serve`]
//! ties the lifecycle together.

pub mod api_error;
pub mod body;
pub mod boot;
pub mod catalog;
pub mod cudagraph;
pub mod driver;
pub mod engine;
pub mod fasthash;
pub mod faults;
pub mod flow;
pub mod frontend;
pub mod hf_cache;
pub mod interface;
pub mod kv;
pub mod logprobs;
pub mod memory;
pub mod model;
pub mod options;
pub mod policy;
pub mod predict;
pub mod profile;
pub mod prom;
pub mod quant;
pub mod reply;
pub mod request;
pub mod roofline;
pub mod sampling;
pub mod scheduler;
pub mod serve;
pub mod server;
pub mod spec;
pub mod sse;
pub mod startup;
pub mod stop;
pub mod tokenize_api;
pub mod twin;
pub mod unsupported;
pub mod validate;
pub mod vlog;
