//! Where each kernel was launched from: the launching `cpu_op` (joined on torch's
//! `External id`, or through the runtime launch's `correlation` when a kernel has no
//! External id) and the innermost Python frame of user code active on that thread at that
//! moment (`python_function` events; built-ins and torch's own frames are skipped, as the
//! contract's reference row shows: `vllm/distributed/device_communicators/symm_mem.py:127
//! all_reduce`, not `torch/_ops.py(1244): __call__`).
//!
//! The stream keeps only compact records of the events it needs (python frames per thread,
//! cpu_ops by External id, launches by correlation, kernels), never the events themselves.

use std::collections::HashMap;

use super::kernels::{canonical, is_kernel};
use super::read::{Event, Id};

/// Interned strings.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.ids.get(s) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    start: f64,
    end: f64,
    name: u32,
}

#[derive(Debug, Clone, Copy)]
struct Launch {
    thread: u32,
    ts: f64,
    op: Option<u32>,
}

/// One kernel name's GPU time by Python frame and by cpu_op, and in all.
type Spread = (HashMap<Option<u32>, f64>, HashMap<u32, f64>, f64);

#[derive(Debug, Clone, Copy)]
struct Kernel {
    pid: u32,
    name: u32,
    dur: f64,
    external: Option<i64>,
    correlation: Option<i64>,
}

/// The launch sites of each kernel, collected event by event.
#[derive(Debug, Default)]
pub struct Sites {
    names: Names,
    frames: HashMap<u32, Vec<Frame>>,
    ops: HashMap<i64, Launch>,
    launches: HashMap<i64, Launch>,
    kernels: Vec<Kernel>,
}

/// Where a kernel's GPU time was launched from.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// `path:line function` of the innermost user frame, if any.
    pub python: Option<String>,
    /// Its share of the kernel's GPU time.
    pub python_share: f64,
    /// The launching cpu_op with the most of the kernel's GPU time.
    pub cpu_op: Option<String>,
}

impl Sites {
    /// Take what the join needs from `e`.
    pub fn add(&mut self, e: &Event) {
        if e.ph != "X" {
            return;
        }
        let thread = |s: &mut Self| s.names.id(&format!("{}/{}", e.pid.0, e.tid.0));
        match e.cat.as_str() {
            "python_function" => {
                let t = thread(self);
                let name = self.names.id(&e.name);
                self.frames.entry(t).or_default().push(Frame {
                    start: e.ts,
                    end: e.ts + e.dur,
                    name,
                });
            }
            "cpu_op" => {
                if let Some(x) = e.args.external_id {
                    let t = thread(self);
                    let op = Some(self.names.id(&e.name));
                    self.ops.insert(
                        x,
                        Launch {
                            thread: t,
                            ts: e.ts,
                            op,
                        },
                    );
                }
            }
            "cuda_runtime" | "cuda_driver" | "hip_runtime" | "hip_driver" => {
                if let Some(c) = e.args.correlation {
                    let t = thread(self);
                    self.launches.insert(
                        c,
                        Launch {
                            thread: t,
                            ts: e.ts,
                            op: None,
                        },
                    );
                }
            }
            _ if is_kernel(e) => {
                let pid = self.names.id(&e.pid.0);
                let name = self.names.id(&canonical(&e.name));
                self.kernels.push(Kernel {
                    pid,
                    name,
                    dur: e.dur,
                    external: e.args.external_id,
                    correlation: e.args.correlation,
                });
            }
            _ => {}
        }
    }

    /// Per canonical kernel name of process `pid`: its launch site.
    pub fn resolve(mut self, pid: &Id) -> HashMap<String, Site> {
        for f in self.frames.values_mut() {
            f.sort_by(|a, b| a.start.total_cmp(&b.start));
        }
        let Some(&pid) = self.names.ids.get(&pid.0) else {
            return HashMap::new();
        };
        // Per kernel name: GPU time by python site and by cpu_op.
        let mut by: HashMap<u32, Spread> = HashMap::new();
        for k in self.kernels.iter().filter(|k| k.pid == pid) {
            let launch = k
                .external
                .and_then(|x| self.ops.get(&x))
                .or_else(|| k.correlation.and_then(|c| self.launches.get(&c)));
            let slot = by.entry(k.name).or_default();
            slot.2 += k.dur;
            let Some(l) = launch else {
                continue;
            };
            let frame = innermost_user(&self.frames, &self.names.names, l.thread, l.ts);
            *slot.0.entry(frame).or_default() += k.dur;
            if let Some(op) = l.op {
                *slot.1.entry(op).or_default() += k.dur;
            }
        }
        by.into_iter()
            .map(|(name, (py, ops, total))| {
                let best = py
                    .iter()
                    .filter(|(f, _)| f.is_some())
                    .max_by(|a, b| a.1.total_cmp(b.1));
                let site = Site {
                    python: best
                        .and_then(|(f, _)| f.map(|i| location(&self.names.names[i as usize]))),
                    python_share: best
                        .map_or(0.0, |(_, us)| if total > 0.0 { us / total } else { 0.0 }),
                    cpu_op: ops
                        .iter()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(i, _)| self.names.names[*i as usize].clone()),
                };
                (self.names.names[name as usize].clone(), site)
            })
            .collect()
    }
}

/// The innermost frame of user code on `thread` that contains `t`.
fn innermost_user(
    frames: &HashMap<u32, Vec<Frame>>,
    names: &[String],
    thread: u32,
    t: f64,
) -> Option<u32> {
    let fs = frames.get(&thread)?;
    let upto = fs.partition_point(|f| f.start <= t);
    // Walk back from the latest frame starting before `t`: the first that still contains
    // it and is user code is the innermost one (bounded: nesting is shallow).
    fs[..upto]
        .iter()
        .rev()
        .take(4096)
        .filter(|f| f.end >= t)
        .find(|f| is_user(&names[f.name as usize]))
        .map(|f| f.name)
}

/// A frame of the program under study: not a built-in, not torch's own machinery.
fn is_user(frame: &str) -> bool {
    if frame.starts_with('<') {
        return false;
    }
    let path = frame.split('(').next().unwrap_or(frame);
    !(path.starts_with("torch/")
        || path.contains("/torch/")
        || path.starts_with("threading.py")
        || path.starts_with("contextlib.py")
        || path.starts_with("runpy.py"))
}

/// `path(line): function` → `path:line function`.
pub fn location(frame: &str) -> String {
    if let Some((path, rest)) = frame.split_once('(')
        && let Some((line, func)) = rest.split_once("): ")
        && line.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("{path}:{line} {func}");
    }
    frame.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_read_like_the_contracts() {
        assert_eq!(
            location("vllm/distributed/device_communicators/symm_mem.py(127): all_reduce"),
            "vllm/distributed/device_communicators/symm_mem.py:127 all_reduce"
        );
        assert_eq!(location("<built-in method x>"), "<built-in method x>");
        assert!(!is_user("torch/_ops.py(1244): __call__"));
        assert!(!is_user(
            "<built-in method multimem_all_reduce_ of pybind11 object>"
        ));
        assert!(is_user(
            "vllm/model_executor/layers/linear.py(543): forward"
        ));
    }
}
