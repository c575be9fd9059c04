//! Which serving stage each kernel ran in: prefill, decode, or a mixed step. Read from the
//! step annotations a framework records (vLLM V1's `execute_context_N(…)_generation_M(…)`,
//! SGLang's `step[DECODE bs=32]`/`step[EXTEND …]`, any `…prefill…`/`…decode…` range), on the
//! GPU timeline when present, else through the kernel's launch on the CPU timeline; a
//! kernel outside every step annotation takes the stage its file's path names, if any.
//!
//! The contract's rule (`generation_0` → prefill, `generation_1` → decode) misreads vLLM's
//! own names: `execute_32_context_0(…)_generation_32(…)` is a decode step of 32 requests
//! and matches neither. forge reads the counts instead: context requests only → prefill,
//! generation requests only → decode, both → mixed.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::collect::{Annotation, Collected, Kernel};

/// A serving stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Prompt processing (prefill, SGLang's extend).
    Prefill,
    /// Token generation.
    Decode,
    /// Steps that batch both.
    Mixed,
    /// Kernels outside any step annotation, in a trace whose path names no stage.
    Unstaged,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Stage::Prefill => "prefill",
            Stage::Decode => "decode",
            Stage::Mixed => "mixed",
            Stage::Unstaged => "unstaged",
        })
    }
}

/// The stage an annotation names, if it names one.
pub fn of_annotation(name: &str) -> Option<Stage> {
    let n = name.to_lowercase();
    if let (Some(ctx), Some(generation)) =
        (count_after(&n, "context_"), count_after(&n, "generation_"))
    {
        return Some(match (ctx > 0, generation > 0) {
            (true, false) => Stage::Prefill,
            (false, true) => Stage::Decode,
            _ => Stage::Mixed,
        });
    }
    let prefill = n.contains("prefill") || n.contains("extend");
    let decode = n.contains("decode");
    match (prefill, decode) {
        (true, false) => Some(Stage::Prefill),
        (false, true) => Some(Stage::Decode),
        (true, true) => Some(Stage::Mixed),
        (false, false) => None,
    }
}

/// The number right after `key` in `s` (`context_12(` → 12).
fn count_after(s: &str, key: &str) -> Option<u64> {
    let at = s.find(key)? + key.len();
    let digits: String = s[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The stage a trace's path names (`…/prefill/…`, `…-EXTEND…`, `…decode…`), if any.
pub fn of_path(path: &Path) -> Option<Stage> {
    let n = path.to_string_lossy().to_lowercase();
    of_annotation(&n).filter(|s| *s != Stage::Mixed)
}

/// The stage of each kernel of `kernels`, in order.
pub fn assign(c: &Collected, kernels: &[Kernel], path: &Path) -> Vec<Stage> {
    let steps = |gpu: bool| -> Vec<(Annotation, Stage)> {
        c.annotations
            .iter()
            .filter(|a| a.gpu == gpu)
            .filter_map(|a| of_annotation(c.names.get(a.name)).map(|s| (*a, s)))
            .collect()
    };
    let (gpu, cpu) = (steps(true), steps(false));
    let fallback = of_path(path).unwrap_or(Stage::Unstaged);
    kernels
        .iter()
        .map(|k| {
            within(&gpu, k.ts, Some(k.pid))
                .or_else(|| c.launch_of(k).and_then(|l| within(&cpu, l.ts, None)))
                .unwrap_or(fallback)
        })
        .collect()
}

/// The stage of the latest-starting step annotation containing `t` (on process `pid` when
/// given). `steps` is sorted by start.
fn within(steps: &[(Annotation, Stage)], t: f64, pid: Option<u32>) -> Option<Stage> {
    let upto = steps.partition_point(|(a, _)| a.start <= t);
    steps[..upto]
        .iter()
        .rev()
        .take(64)
        .find(|(a, _)| a.end >= t && pid.is_none_or(|p| p == a.pid))
        .map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_of_each_framework_read_as_stages() {
        for (name, stage) in [
            (
                "execute_context_1(888_788544)_generation_0(0)",
                Some(Stage::Prefill),
            ),
            (
                "execute_32_context_0(sq0sk0sqsq0sqsk0)_generation_32(sq32sk55086sqsq32sqsk55086)",
                Some(Stage::Decode),
            ),
            (
                "execute_context_2(10)_generation_30(30)",
                Some(Stage::Mixed),
            ),
            ("step[DECODE bs=32]", Some(Stage::Decode)),
            ("step[EXTEND bs=4]", Some(Stage::Prefill)),
            ("ProfilerStep#1", None),
            ("nccl:_all_gather_base", None),
        ] {
            assert_eq!(of_annotation(name), stage, "{name}");
        }
        assert_eq!(
            of_path(Path::new(
                "/p/profiles/sglang/1712-TP-0-DECODE.trace.json.gz"
            )),
            Some(Stage::Decode)
        );
        assert_eq!(
            of_path(Path::new("/p/prefill/x.json")),
            Some(Stage::Prefill)
        );
        assert_eq!(of_path(Path::new("/p/x.json")), None);
    }
}
