//! A validated `forge bench` invocation (built from the command line by `commands::bench`,
//! and by the tuner for each measured run).

use std::path::PathBuf;
use std::time::Duration;

use super::LoadSpec;
use crate::workload::Workload;

/// A validated `forge bench` invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Server root, without a trailing slash.
    pub base_url: String,
    /// Model to request; `None` asks the server's `/v1/models`.
    pub model: Option<String>,
    /// The measured requests.
    pub workload: Workload,
    /// How the load is offered.
    pub load: LoadSpec,
    /// Per-request deadline in server seconds.
    pub request_timeout: Duration,
    /// Where to write the result JSON.
    pub output: Option<PathBuf>,
    /// Keep per-request lists in the JSON.
    pub save_detailed: bool,
    /// Draw a progress bar (only on a terminal).
    pub progress: bool,
    /// Open a new connection for every request instead of reusing idle ones: for servers
    /// that close the connection after each streamed response (llama.cpp), where reusing
    /// one races the server's close and fails the request.
    pub fresh_connections: bool,
    /// Say how far the measured phase is at this interval (wall time), when set.
    pub heartbeat: Option<Duration>,
}

impl Settings {
    /// The per-request deadline in wall time (server seconds × time scale).
    pub fn wall_timeout(&self) -> Duration {
        self.request_timeout.mul_f64(self.load.time_scale)
    }
}
