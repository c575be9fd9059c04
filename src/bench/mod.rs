//! `forge bench`: replays a workload against any OpenAI-compatible server with an
//! open-loop schedule and reports vLLM-compatible metrics.
//!
//! Layout: [`schedule`] decides when each request is due, [`sse`] parses the stream,
//! [`client`] sends one request and measures it, [`runner`] drives the schedule under the
//! concurrency cap, [`metrics`] turns [`record::RequestRecord`]s into a [`metrics::BenchResult`],
//! [`output`] prints the summary.

pub mod client;
pub mod load;
pub mod loopback;
pub mod metrics;
pub mod output;
pub mod record;
pub mod runner;
pub mod schedule;
pub mod settings;
pub mod sse;
pub mod stream;
pub mod warmup;

pub use load::{
    Endpoint, LoadArgs, LoadError, LoadSpec, Slo, Timing, parse_percentiles, parse_rate, parse_slo,
};
