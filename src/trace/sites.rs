//! Where each kernel was launched from: the launching `cpu_op` (joined on torch's
//! `External id`, or through the runtime launch's `correlation` when a kernel has no
//! External id) and the innermost Python frame of user code active on that thread at that
//! moment (`python_function` events; built-ins and torch's own frames are skipped, as the
//! contract's reference row shows: `vllm/distributed/device_communicators/symm_mem.py:127
//! all_reduce`, not `torch/_ops.py(1244): __call__`).
//!
//! It reads the compact records of [`super::collect`], never the events themselves.

use std::collections::HashMap;

use super::collect::{Collected, Frame, Kernel};

/// One kernel name's GPU time by Python frame and by cpu_op, and in all.
type Spread = (HashMap<Option<u32>, f64>, HashMap<u32, f64>, f64);

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

/// Per canonical kernel name among `kernels`: its launch site.
pub fn resolve<'a>(
    c: &Collected,
    kernels: impl Iterator<Item = &'a Kernel>,
) -> HashMap<String, Site> {
    let mut by: HashMap<u32, Spread> = HashMap::new();
    for k in kernels {
        let slot = by.entry(k.name).or_default();
        slot.2 += k.dur;
        let Some(l) = c.launch_of(k) else {
            continue;
        };
        let frame = innermost_user(c, l.thread, l.ts);
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
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)));
            let site = Site {
                python: best.and_then(|(f, _)| f.map(|i| location(c.names.get(i)))),
                python_share: best
                    .map_or(0.0, |(_, us)| if total > 0.0 { us / total } else { 0.0 }),
                cpu_op: ops
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(i, _)| c.names.get(*i).to_string()),
            };
            (c.names.get(name).to_string(), site)
        })
        .collect()
}

/// The innermost frame of user code on `thread` that contains `t` ([`Collected`] keeps
/// only user frames).
fn innermost_user(c: &Collected, thread: u32, t: f64) -> Option<u32> {
    let fs: &[Frame] = c.frames.get(&thread)?;
    let upto = fs.partition_point(|f| f.start <= t);
    // Walk back from the latest frame starting before `t`: the first that still contains
    // it is the innermost one (bounded: nesting is shallow).
    fs[..upto]
        .iter()
        .rev()
        .take(4096)
        .find(|f| f.end >= t)
        .map(|f| f.name)
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
    use super::super::collect::is_user;
    use super::*;

    #[test]
    fn locations_read_like_the_contracts() {
        assert_eq!(
            location("vllm/distributed/device_communicators/symm_mem.py(127): all_reduce"),
            "vllm/distributed/device_communicators/symm_mem.py:127 all_reduce"
        );
        assert_eq!(location("<built-in method x>"), "<built-in method x>");
        assert!(!is_user("torch/_ops.py(1244): __call__"));
        assert!(!is_user("nn.Module: Linear_5"));
        assert!(!is_user(
            "<built-in method multimem_all_reduce_ of pybind11 object>"
        ));
        assert!(is_user(
            "vllm/model_executor/layers/linear.py(543): forward"
        ));
    }
}
