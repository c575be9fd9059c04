//! What one pass over a trace keeps: compact records of the events analysis needs — GPU
//! kernels (process, stream, name, start, duration, join ids), Python frames per thread,
//! cpu_ops by External id, runtime launches by correlation, step annotations — with every
//! string interned once. Never the events themselves, so memory grows with the number of
//! kernels and frames (tens of bytes each), not with the file.

use std::collections::HashMap;

use super::kernels::{canonical, is_kernel};
use super::read::Event;

/// Interned strings.
#[derive(Debug, Default)]
pub struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    /// The id of `s`, interning it when new.
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.ids.get(s) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }

    /// The id of `s`, if interned.
    pub fn find(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The string of `id`.
    pub fn get(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// A `python_function` frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Start, µs.
    pub start: f64,
    /// End, µs.
    pub end: f64,
    /// `path(line): function`, interned.
    pub name: u32,
}

/// Where and when a kernel was launched from the CPU.
#[derive(Debug, Clone, Copy)]
pub struct Launch {
    /// `pid/tid`, interned.
    pub thread: u32,
    /// Start, µs.
    pub ts: f64,
    /// The cpu_op's name, interned (None for a runtime launch).
    pub op: Option<u32>,
}

/// A GPU kernel (memcpy and memset included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kernel {
    /// Process, interned.
    pub pid: u32,
    /// Stream (the event's tid), interned.
    pub stream: u32,
    /// Canonical name, interned.
    pub name: u32,
    /// Start, µs.
    pub ts: f64,
    /// Duration, µs.
    pub dur: f64,
    /// torch's External id.
    pub external: Option<i64>,
    /// The runtime's correlation id.
    pub correlation: Option<i64>,
}

impl Kernel {
    /// End, µs.
    pub fn end(&self) -> f64 {
        self.ts + self.dur
    }
}

/// A user annotation (`record_function` range) on the CPU or the GPU timeline.
#[derive(Debug, Clone, Copy)]
pub struct Annotation {
    /// Process, interned.
    pub pid: u32,
    /// Start, µs.
    pub start: f64,
    /// End, µs.
    pub end: f64,
    /// Name, interned.
    pub name: u32,
    /// On the GPU timeline (`gpu_user_annotation`).
    pub gpu: bool,
}

/// Everything analysis keeps from one trace.
#[derive(Debug, Default)]
pub struct Collected {
    /// Interned strings.
    pub names: Names,
    /// Python frames per thread, in file order.
    pub frames: HashMap<u32, Vec<Frame>>,
    /// cpu_ops by External id.
    pub ops: HashMap<i64, Launch>,
    /// Runtime launches by correlation id.
    pub launches: HashMap<i64, Launch>,
    /// Kernels, in file order.
    pub kernels: Vec<Kernel>,
    /// User annotations.
    pub annotations: Vec<Annotation>,
    /// The earliest timestamp seen (Perfetto shows times from here), µs.
    pub start: Option<f64>,
    /// Python frames and annotations that name each framework (`vllm/`, `sglang/`,
    /// `tensorrt_llm/`).
    pub hints: [u64; 3],
    /// The last event's `pid/tid` and its interned id (events of one thread come in runs).
    last_thread: Option<(String, String, u32)>,
    /// Per interned name: is it a frame of user code (`None`: not asked yet).
    user: Vec<Option<bool>>,
}

impl Collected {
    /// Take what analysis needs from `e`.
    pub fn add(&mut self, e: &Event) {
        if e.ph == "X" || e.ph == "B" || e.ph == "i" {
            self.start = Some(self.start.map_or(e.ts, |s| s.min(e.ts)));
        }
        if e.ph != "X" {
            return;
        }
        let thread = |s: &mut Self| s.thread(&e.pid.0, &e.tid.0);
        match e.cat.as_ref() {
            "python_function" => {
                self.hint(&e.name);
                let name = self.names.id(&e.name);
                // Only frames of user code are ever a launch site: the rest (built-ins,
                // torch's own frames, most of a trace's Python events) are not kept.
                if !self.is_user(name) {
                    return;
                }
                let t = thread(self);
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
            "user_annotation" | "gpu_user_annotation" => {
                self.hint(&e.name);
                let pid = self.names.id(&e.pid.0);
                let name = self.names.id(&e.name);
                self.annotations.push(Annotation {
                    pid,
                    start: e.ts,
                    end: e.ts + e.dur,
                    name,
                    gpu: e.cat.as_ref() == "gpu_user_annotation",
                });
            }
            _ if is_kernel(e) => {
                let pid = self.names.id(&e.pid.0);
                let stream = self.names.id(&e.tid.0);
                let name = self.names.id(&canonical(&e.name));
                self.kernels.push(Kernel {
                    pid,
                    stream,
                    name,
                    ts: e.ts,
                    dur: e.dur,
                    external: e.args.external_id,
                    correlation: e.args.correlation,
                });
            }
            _ => {}
        }
    }

    /// The interned `pid/tid` of a thread.
    fn thread(&mut self, pid: &str, tid: &str) -> u32 {
        if let Some((p, t, id)) = &self.last_thread
            && p == pid
            && t == tid
        {
            return *id;
        }
        let id = self.names.id(&format!("{pid}/{tid}"));
        self.last_thread = Some((pid.to_string(), tid.to_string(), id));
        id
    }

    /// Whether the interned frame name `id` is user code ([`is_user`]).
    fn is_user(&mut self, id: u32) -> bool {
        let i = id as usize;
        if self.user.len() <= i {
            self.user.resize(i + 1, None);
        }
        *self.user[i].get_or_insert_with(|| is_user(self.names.get(id)))
    }

    fn hint(&mut self, name: &str) {
        if name.starts_with("vllm/") || name.contains("/vllm/") || name.starts_with("execute_") {
            self.hints[0] += 1;
        } else if name.starts_with("sglang/")
            || name.contains("/sglang/")
            || name.starts_with("step[")
        {
            self.hints[1] += 1;
        } else if name.contains("tensorrt_llm/") {
            self.hints[2] += 1;
        }
    }

    /// The cpu_op or runtime launch behind `k`.
    pub fn launch_of(&self, k: &Kernel) -> Option<&Launch> {
        k.external
            .and_then(|x| self.ops.get(&x))
            .or_else(|| k.correlation.and_then(|c| self.launches.get(&c)))
    }

    /// The process with the most kernel time; `None` without kernels.
    pub fn busiest_pid(&self) -> Option<u32> {
        let mut by: HashMap<u32, f64> = HashMap::new();
        for k in &self.kernels {
            *by.entry(k.pid).or_default() += k.dur;
        }
        by.into_iter()
            .max_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then_with(|| self.names.get(b.0).cmp(self.names.get(a.0)))
            })
            .map(|(p, _)| p)
    }

    /// Sort each thread's frames by start (the site join binary-searches them).
    pub fn finish(&mut self) {
        for f in self.frames.values_mut() {
            f.sort_by(|a, b| a.start.total_cmp(&b.start));
        }
        self.annotations.sort_by(|a, b| a.start.total_cmp(&b.start));
    }
}

/// A frame of the program under study: not a built-in, not torch's own machinery.
pub fn is_user(frame: &str) -> bool {
    // Built-ins (`<built-in method …>`) and torch's module markers (`nn.Module: Linear_5`,
    // one per layer instance: they would split one launch site into a site per layer).
    if frame.starts_with('<') || frame.starts_with("nn.Module:") {
        return false;
    }
    let path = frame.split('(').next().unwrap_or(frame);
    !(path.starts_with("torch/")
        || path.contains("/torch/")
        || path.starts_with("threading.py")
        || path.starts_with("contextlib.py")
        || path.starts_with("runpy.py"))
}
