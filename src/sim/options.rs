//! forge's own `--sim-*` flags on `forge sim serve` / `forge sim predict`, picked out of
//! argv before the rest goes to the vLLM parser. Errors are
//! argparse-style and exit 2, like the vLLM flags around them.

use crate::hardware::GpuSpec;
use crate::hardware::gpus::{lookup, names};

/// A forge flag spec: name and whether it takes a value.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `--sim-gpu`.
    pub name: &'static str,
    /// True when a value follows.
    pub takes_value: bool,
}

const fn spec(name: &'static str, takes_value: bool) -> Spec {
    Spec { name, takes_value }
}

/// The `--sim-*` flags (serve and predict).
pub const SIM_SPECS: &[Spec] = &[
    spec("--sim-gpu", true),
    spec("--sim-time-scale", true),
    spec("--sim-boot-time-scale", true),
    spec("--sim-seed", true),
    spec("--sim-noise", true),
    spec("--sim-fail-startup", true),
    spec("--sim-slow-start", true),
    spec("--sim-crash-after", true),
    spec("--sim-garbage-after", true),
    spec("--sim-ignore-sigterm", false),
    spec("--sim-spawn-child", false),
];

/// A bad forge flag (printed like argparse, exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "usage: forge sim {command} MODEL [vllm serve flags] [--sim-* flags]\nforge sim {command}: error: {message}"
)]
pub struct OptionError {
    /// `serve` or `predict`.
    pub command: &'static str,
    /// What is wrong.
    pub message: String,
}

/// forge flags found on the command line, in order: `(name, value)`.
pub type Found = Vec<(&'static str, Option<String>)>;

/// Split `args` into forge's flags (per `specs`) and everything else (for vLLM).
pub fn split(
    args: &[String],
    specs: &[Spec],
    command: &'static str,
) -> Result<(Vec<String>, Found), OptionError> {
    let err = |message: String| OptionError { command, message };
    let mut rest = Vec::new();
    let mut found = Found::new();
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = match args[i].split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (args[i].as_str(), None),
        };
        let Some(s) = specs.iter().find(|s| s.name == name) else {
            rest.push(args[i].clone());
            i += 1;
            continue;
        };
        let value = match (s.takes_value, inline) {
            (false, Some(v)) => {
                return Err(err(format!(
                    "argument {name}: ignored explicit argument '{v}'"
                )));
            }
            (false, None) => None,
            (true, Some(v)) => Some(v),
            (true, None) => {
                i += 1;
                let v = args.get(i).filter(|v| !v.starts_with("--"));
                Some(
                    v.cloned()
                        .ok_or_else(|| err(format!("argument {name}: expected one argument")))?,
                )
            }
        };
        found.push((s.name, value));
        i += 1;
    }
    Ok((rest, found))
}

/// `--sim-fail-startup` kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupFailure {
    /// CUDA out of memory while loading / no memory for KV blocks.
    Oom,
    /// An invalid configuration (ValueError).
    Config,
}

/// Fault injection: each flag makes the server fail the way its name says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// `--sim-fail-startup oom|config`.
    pub fail_startup: Option<StartupFailure>,
    /// `--sim-slow-start S`: extra wall seconds before binding.
    pub slow_start_s: f64,
    /// `--sim-crash-after N`: the engine dies once N requests have started streaming.
    pub crash_after: Option<u64>,
    /// `--sim-garbage-after N`: each stream turns into invalid SSE after N chunks.
    pub garbage_after: Option<u32>,
    /// `--sim-ignore-sigterm`: only SIGKILL stops the server.
    pub ignore_sigterm: bool,
    /// `--sim-spawn-child`: start a worker process that outlives a SIGKILL of the server.
    pub spawn_child: bool,
}

/// The simulator's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// `--sim-gpu` (default H100).
    pub gpu: &'static GpuSpec,
    /// `--sim-time-scale`: wall seconds per simulated second (0.1 = 10x faster).
    pub time_scale: f64,
    /// `--sim-boot-time-scale`: the same for the startup delay only (default: time scale),
    /// so dry runs need not wait out a scaled minute of model loading per boot.
    pub boot_time_scale: Option<f64>,
    /// `--sim-seed`.
    pub seed: u64,
    /// `--sim-noise PCT`: run-to-run timing noise.
    pub noise_pct: f64,
    /// Fault injection.
    pub faults: Faults,
}

/// The GPU `--sim-gpu` defaults to.
pub const DEFAULT_GPU: &str = "H100";

impl SimOptions {
    /// Wall seconds per simulated second of startup.
    pub fn boot_scale(&self) -> f64 {
        self.boot_time_scale.unwrap_or(self.time_scale)
    }

    /// Build from the `--sim-*` flags found.
    pub fn from_found(found: &Found, command: &'static str) -> Result<SimOptions, OptionError> {
        let err = |message: String| OptionError { command, message };
        let mut o = SimOptions {
            gpu: lookup(DEFAULT_GPU).ok_or_else(|| err("no default GPU".into()))?,
            time_scale: 1.0,
            boot_time_scale: None,
            seed: 0,
            noise_pct: 0.0,
            faults: Faults::default(),
        };
        for (name, value) in found {
            let v = value.as_deref().unwrap_or_default();
            o.set(name, v)
                .map_err(|why| err(format!("argument {name}: {why}")))?;
        }
        Ok(o)
    }

    fn set(&mut self, name: &str, v: &str) -> Result<(), String> {
        match name {
            "--sim-gpu" => {
                self.gpu = lookup(v).ok_or_else(|| {
                    format!("unknown GPU '{v}' (choose from {})", names().join(", "))
                })?
            }
            "--sim-time-scale" => self.time_scale = within(v, CLOCK_SCALE)?,
            "--sim-boot-time-scale" => self.boot_time_scale = Some(within(v, CLOCK_SCALE)?),
            "--sim-seed" => self.seed = number(v)?,
            "--sim-noise" => self.noise_pct = within(v, (0.0, 100.0))?,
            "--sim-fail-startup" => {
                self.faults.fail_startup = Some(match v {
                    "oom" => StartupFailure::Oom,
                    "config" => StartupFailure::Config,
                    _ => return Err(format!("invalid choice: '{v}' (choose from oom, config)")),
                })
            }
            "--sim-slow-start" => self.faults.slow_start_s = within(v, (0.0, 86_400.0))?,
            "--sim-crash-after" => self.faults.crash_after = Some(number(v)?),
            "--sim-garbage-after" => self.faults.garbage_after = Some(number(v)?),
            "--sim-ignore-sigterm" => self.faults.ignore_sigterm = true,
            "--sim-spawn-child" => self.faults.spawn_child = true,
            _ => {}
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("invalid int value: '{v}'"))
}

fn float(v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("invalid float value: '{v}'"))
}

/// The simulator's clock scales: 0.001 (1000× faster than real time) to 1000.
const CLOCK_SCALE: (f64, f64) = (0.001, 1_000.0);

/// A number within `lo..=hi` (clocks, delays and percentages are bounded so that nothing
/// downstream overflows a `Duration`).
fn within(v: &str, (lo, hi): (f64, f64)) -> Result<f64, String> {
    float(v).and_then(|x| {
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(format!("must be in {lo}..={hi}, got {v}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn split_keeps_vllm_flags_in_order() {
        let (rest, found) = split(
            &argv("--max-num-seqs 8 --sim-gpu L4 --sim-time-scale=0.1 --sim-spawn-child -tp 1"),
            SIM_SPECS,
            "serve",
        )
        .unwrap();
        assert_eq!(rest, argv("--max-num-seqs 8 -tp 1"));
        let o = SimOptions::from_found(&found, "serve").unwrap();
        assert_eq!(o.gpu.name, "L4");
        assert_eq!(o.time_scale, 0.1);
        assert!(o.faults.spawn_child);
    }

    #[test]
    fn bad_sim_flags_read_like_argparse() {
        let e = split(&argv("--sim-gpu"), SIM_SPECS, "serve").unwrap_err();
        assert_eq!(
            e.to_string(),
            "usage: forge sim serve MODEL [vllm serve flags] [--sim-* flags]\nforge sim serve: \
             error: argument --sim-gpu: expected one argument"
        );
        let (_, found) = split(&argv("--sim-gpu GTX9"), SIM_SPECS, "serve").unwrap();
        let e = SimOptions::from_found(&found, "serve").unwrap_err();
        assert!(
            e.message
                .starts_with("argument --sim-gpu: unknown GPU 'GTX9' (choose from")
        );
        let (_, found) = split(&argv("--sim-fail-startup disk"), SIM_SPECS, "serve").unwrap();
        assert!(SimOptions::from_found(&found, "serve").is_err());
        let (_, found) = split(&argv("--sim-time-scale 0"), SIM_SPECS, "serve").unwrap();
        assert!(SimOptions::from_found(&found, "serve").is_err());
        // Regression: these overflowed a Duration and panicked.
        for flag in [
            "--sim-time-scale 1e300",
            "--sim-boot-time-scale 1e19",
            "--sim-slow-start 1e300",
            "--sim-noise 1000",
        ] {
            let (_, found) = split(&argv(flag), SIM_SPECS, "serve").unwrap();
            let e = SimOptions::from_found(&found, "serve").unwrap_err();
            assert!(e.message.contains("must be in"), "{flag}: {}", e.message);
        }
        assert!(split(&argv("--sim-spawn-child=1"), SIM_SPECS, "serve").is_err());
    }
}
