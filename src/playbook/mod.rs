//! Playbooks: serving expertise as Markdown an LLM reads and a machine checks.
//!
//! A playbook has prose sections (given to the LLM agent verbatim) and two `yaml` blocks:
//! **Search space** (the values each knob may take, per layer) and **Rules** (when a
//! symptom shows, which knobs to move and why), used by the built-in agent. The bundled
//! playbooks are compiled into the binary, so `playbook show` works with no files around.

pub mod rules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::engine::allowlist as knobs;
use crate::recipe::EngineKind;
use crate::recipe::Layer;
pub use rules::{Condition, Direction, Rule};

/// The bundled vLLM playbook.
pub const VLLM_PLAYBOOK: &str = include_str!("../../playbooks/vllm.md");
/// The bundled llama.cpp playbook.
pub const LLAMACPP_PLAYBOOK: &str = include_str!("../../playbooks/llamacpp.md");

/// The bundled SGLang playbook.
pub const SGLANG_PLAYBOOK: &str = include_str!("../../playbooks/sglang.md");
/// The bundled TensorRT-LLM playbook.
pub const TRTLLM_PLAYBOOK: &str = include_str!("../../playbooks/trtllm.md");

/// Sections every playbook must have.
pub const REQUIRED_SECTIONS: &[&str] =
    &["What to try first", "Heuristics", "Search space", "Rules"];

/// A parsed, validated playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// Where it came from (`<bundled vllm>` for the built-in one).
    pub source: String,
    /// The raw Markdown.
    pub text: String,
    /// Engine it is for.
    pub engine: EngineKind,
    /// Sections by heading, in order.
    pub sections: Vec<(String, String)>,
    /// Values per knob, per layer, in the order given.
    pub space: BTreeMap<Layer, BTreeMap<String, Vec<Value>>>,
    /// Symptom rules.
    pub rules: Vec<Rule>,
}

/// One problem found by validation, with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// 1-based line in the playbook file (0 when the problem is the whole file).
    pub line: usize,
    /// Dotted path of the offending item (`search_space.config.max_num_seqs`).
    pub item: String,
    /// What is wrong.
    pub why: String,
}

/// Why a playbook is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(source_name, problems))]
pub struct PlaybookError {
    /// The file.
    pub source_name: String,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

/// `FILE:LINE: item: why` a line each (`FILE: item: why` for the whole file).
fn render(source: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            0 => format!("{source}: {}: {}", p.item, p.why),
            line => format!("{source}:{line}: {}: {}", p.item, p.why),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Playbook {
    /// The bundled playbook for an engine.
    pub fn bundled(engine: EngineKind) -> Result<Playbook, PlaybookError> {
        match engine {
            EngineKind::Vllm => Playbook::parse("<bundled playbooks/vllm.md>", VLLM_PLAYBOOK),
            EngineKind::Llamacpp => {
                Playbook::parse("<bundled playbooks/llamacpp.md>", LLAMACPP_PLAYBOOK)
            }
            EngineKind::Sglang => Playbook::parse("<bundled playbooks/sglang.md>", SGLANG_PLAYBOOK),
            EngineKind::Trtllm => Playbook::parse("<bundled playbooks/trtllm.md>", TRTLLM_PLAYBOOK),
        }
    }

    /// Read and validate a playbook file.
    pub fn load(path: &Path) -> Result<Playbook, PlaybookError> {
        let text = crate::text::read(path).map_err(|e| {
            let (line, why) = match e {
                crate::text::ReadError::Io(why) => (0, why),
                crate::text::ReadError::NotUtf8(bad) => (bad.line, bad.why()),
            };
            PlaybookError {
                source_name: path.display().to_string(),
                problems: vec![Problem {
                    line,
                    item: "file".into(),
                    why,
                }],
            }
        })?;
        Playbook::parse(&path.display().to_string(), &text)
    }

    /// Parse and validate playbook text; every problem is reported, not just the first.
    pub fn parse(source: &str, text: &str) -> Result<Playbook, PlaybookError> {
        let mut problems = Vec::new();
        let engine = parse_engine(text, &mut problems);
        let sections = split_sections(text);
        for req in REQUIRED_SECTIONS {
            if !sections.iter().any(|s| s.heading == *req) {
                problems.push(Problem {
                    line: 0,
                    item: format!("section `{req}`"),
                    why: "missing (required: ## What to try first, ## Heuristics, ## Search space, ## Rules)".into(),
                });
            }
        }
        let space = section_yaml(&sections, "Search space", &mut problems)
            .map(|(v, line)| parse_space(engine, &v, line, text, &mut problems))
            .unwrap_or_default();
        let rules = section_yaml(&sections, "Rules", &mut problems)
            .map(|(v, line)| rules::parse_rules(&v, line, text, engine, &space, &mut problems))
            .unwrap_or_default();
        if space.values().all(BTreeMap::is_empty)
            && !problems
                .iter()
                .any(|p| p.item.starts_with("search_space") || p.item.contains("Search space"))
        {
            problems.push(Problem {
                line: 0,
                item: "search_space".into(),
                why: "no knobs: `## Search space` needs a ```yaml block of layer → knob → [values]"
                    .into(),
            });
        }
        if !problems.is_empty() {
            return Err(PlaybookError {
                source_name: source.to_string(),
                problems,
            });
        }
        Ok(Playbook {
            source: source.to_string(),
            text: text.to_string(),
            engine,
            sections: sections.into_iter().map(|s| (s.heading, s.body)).collect(),
            space,
            rules,
        })
    }

    /// The prose of a section, if present.
    pub fn section(&self, heading: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(h, _)| h == heading)
            .map(|(_, b)| b.as_str())
    }

    /// Values of a knob in the search space.
    pub fn values(&self, layer: Layer, knob: &str) -> Option<&[Value]> {
        self.space.get(&layer)?.get(knob).map(Vec::as_slice)
    }
}

/// Resolve `--playbook`: a file, or the bundled one for the engine.
pub fn resolve(path: Option<&PathBuf>, engine: EngineKind) -> Result<Playbook, PlaybookError> {
    match path {
        Some(p) => Playbook::load(p),
        None => Playbook::bundled(engine),
    }
}

struct Section {
    heading: String,
    line: usize,
    body: String,
}

fn split_sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && let Some(h) = line.strip_prefix("## ") {
            out.push(Section {
                heading: h.trim().to_string(),
                line: i + 1,
                body: String::new(),
            });
            continue;
        }
        if let Some(s) = out.last_mut() {
            s.body.push_str(line);
            s.body.push('\n');
        }
    }
    out
}

fn parse_engine(text: &str, problems: &mut Vec<Problem>) -> EngineKind {
    let found = text.lines().enumerate().find_map(|(i, l)| {
        l.strip_prefix("engine:")
            .map(|v| (i + 1, v.trim().to_string()))
    });
    match found.as_ref().map(|(l, v)| (*l, v.as_str())) {
        Some((_, "vllm")) => EngineKind::Vllm,
        Some((_, "llamacpp")) => EngineKind::Llamacpp,
        Some((_, "sglang")) => EngineKind::Sglang,
        Some((_, "trtllm")) => EngineKind::Trtllm,
        Some((line, other)) => {
            problems.push(Problem {
                line,
                item: "engine".into(),
                why: format!("unknown engine `{other}` (vllm, llamacpp, sglang, trtllm)"),
            });
            EngineKind::Vllm
        }
        None => {
            problems.push(Problem {
                line: 0,
                item: "engine".into(),
                why: "missing `engine: vllm|llamacpp|sglang|trtllm` line".into(),
            });
            EngineKind::Vllm
        }
    }
}

/// The first ```yaml block of a section, parsed, with the line its content starts on.
fn section_yaml(
    sections: &[Section],
    heading: &str,
    problems: &mut Vec<Problem>,
) -> Option<(Value, usize)> {
    let s = sections.iter().find(|s| s.heading == heading)?;
    let mut lines = s.body.lines().enumerate();
    let start = lines
        .find(|(_, l)| l.trim_start().starts_with("```yaml"))?
        .0;
    let body: Vec<&str> = s
        .body
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.trim_start().starts_with("```"))
        .collect();
    let first_line = s.line + start + 2;
    match serde_norway::from_str::<Value>(&body.join("\n")) {
        Ok(v) => Some((v, first_line)),
        Err(e) => {
            problems.push(Problem {
                line: first_line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
                item: format!("section `{heading}`"),
                why: format!(
                    "invalid YAML: {}",
                    crate::text::without_location(&e.to_string())
                ),
            });
            None
        }
    }
}

/// Line of the first occurrence of `key:` at or after `from` (for error messages).
pub(crate) fn line_of(text: &str, key: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            l.trim_start().starts_with(&format!("{key}:")) || l.contains(&format!(" {key}:"))
        })
        .map_or(from, |(i, _)| i + 1)
}

fn parse_space(
    engine: EngineKind,
    v: &Value,
    first_line: usize,
    text: &str,
    problems: &mut Vec<Problem>,
) -> BTreeMap<Layer, BTreeMap<String, Vec<Value>>> {
    let mut out = BTreeMap::new();
    let Some(obj) = v.as_object() else {
        problems.push(Problem {
            line: first_line,
            item: "search_space".into(),
            why: "expected a mapping of layer → knob → [values]".into(),
        });
        return out;
    };
    for (layer_name, knobs_v) in obj {
        let line = line_of(text, layer_name, first_line);
        let Some(layer) = [Layer::Config, Layer::Quant, Layer::Kernel]
            .into_iter()
            .find(|l| l.as_str() == layer_name)
        else {
            problems.push(Problem {
                line,
                item: format!("search_space.{layer_name}"),
                why: "unknown layer (config, quant, kernel)".into(),
            });
            continue;
        };
        let entry: &mut BTreeMap<String, Vec<Value>> = out.entry(layer).or_default();
        for (knob, values) in knobs_v.as_object().into_iter().flatten() {
            let line = line_of(text, knob, first_line);
            let item = format!("search_space.{layer_name}.{knob}");
            let Some(list) = values.as_array().filter(|a| !a.is_empty()) else {
                problems.push(Problem {
                    line,
                    item,
                    why: "expected a non-empty list of values".into(),
                });
                continue;
            };
            for value in list {
                if let Err(why) = knobs::check(engine, layer, knob, value) {
                    problems.push(Problem {
                        line,
                        item: item.clone(),
                        why: why.why,
                    });
                }
            }
            entry.insert(knob.clone(), list.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_playbooks_validate() {
        let p = Playbook::bundled(EngineKind::Vllm).unwrap();
        assert_eq!(p.engine, EngineKind::Vllm);
        assert!(p.values(Layer::Config, "max_num_seqs").unwrap().len() >= 5);
        assert!(p.rules.len() >= 5);
        assert!(p.section("Heuristics").unwrap().contains("Preemptions"));
        Playbook::bundled(EngineKind::Llamacpp).unwrap();
    }

    #[test]
    fn validation_reports_every_problem_with_its_line() {
        let text = VLLM_PLAYBOOK
            .replace(
                "kv_cache_quant: [auto, fp8]",
                "kv_cache_quant: [auto, bf16]",
            )
            .replace("  async_scheduling: [true, false]", "  swap_space: [4, 8]")
            .replace("## Heuristics", "## Hints");
        let e = Playbook::parse("pb.md", &text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("section `Heuristics`: missing"), "{msg}");
        let kv_line = text
            .lines()
            .position(|l| l.contains("kv_cache_quant: [auto, bf16]"))
            .unwrap()
            + 1;
        assert!(msg.contains(&format!("pb.md:{kv_line}: search_space.quant.kv_cache_quant: kv_cache_quant: \"bf16\" is not one of")), "{msg}");
        let swap_line = text.lines().position(|l| l.contains("swap_space")).unwrap() + 1;
        assert!(msg.contains(&format!("pb.md:{swap_line}: search_space.config.swap_space: `swap_space` is not a config knob")), "{msg}");
    }

    #[test]
    fn rule_values_conditions_and_an_empty_space_are_checked() {
        let with_rule = |rule: &str| {
            VLLM_PLAYBOOK.replacen(
                "- when: preemptions > 0\n",
                &format!("{rule}\n  why: injected.\n- when: preemptions > 0\n"),
                1,
            )
        };
        for (rule, want) in [
            (
                "- when: preemptions > 0\n  try: {max_num_seqs: 99999999}",
                "rules[0].try.max_num_seqs",
            ),
            (
                "- when: preemptions > 0\n  try: {max_num_seqs: '--model=/etc/passwd'}",
                "rules[0].try.max_num_seqs",
            ),
            (
                "- when: preemptions > nan\n  try: {max_num_seqs: down}",
                "`nan` is not a finite number",
            ),
            (
                "- when: preemptions > inf\n  try: {max_num_seqs: down}",
                "`inf` is not a finite number",
            ),
        ] {
            let msg = Playbook::parse("pb.md", &with_rule(rule))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(want), "{rule}: {msg}");
        }
        let no_yaml = "engine: vllm\n## What to try first\nx\n## Heuristics\nx\n## Search space\nnone\n## Rules\nnone\n";
        let msg = Playbook::parse("pb.md", no_yaml).unwrap_err().to_string();
        assert!(msg.contains("search_space"), "{msg}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// The bundled playbook with any line replaced by any text: a playbook or a list of
        /// problems, never a panic.
        #[test]
        fn any_edit_of_a_playbook_parses_or_is_reported(
            at in 0usize..200,
            line in "[ -~]{0,40}|- when: [a-z_ ><=/*0-9.]{0,30}|  try: \\{[a-z_]{1,20}: [a-z0-9.'-]{0,12}\\}",
        ) {
            let mut lines: Vec<&str> = VLLM_PLAYBOOK.lines().collect();
            let i = at % lines.len();
            lines[i] = &line;
            let text = lines.join("\n");
            if let Err(e) = Playbook::parse("pb.md", &text) {
                proptest::prop_assert!(e.to_string().contains("pb.md"));
            }
        }
    }

    #[test]
    fn thousands_of_rules_parse() {
        // Regression: each rule's line was searched from the top (20,000 rules: 8 s).
        let many: String = (0..5000)
            .map(|i| {
                format!("- when: preemptions > {i}\n  try: {{max_num_seqs: down}}\n  why: r{i}.\n")
            })
            .collect();
        let text = VLLM_PLAYBOOK.replacen(
            "- when: preemptions > 0\n",
            &format!("{many}- when: preemptions > 0\n"),
            1,
        );
        let p = Playbook::parse("pb.md", &text).unwrap();
        assert!(p.rules.len() > 5000);
    }

    #[test]
    fn broken_yaml_and_engine_line() {
        let text = VLLM_PLAYBOOK
            .replace("engine: vllm", "engine: tgi")
            .replace("max_num_seqs: [16,", "max_num_seqs: [16,,");
        let msg = Playbook::parse("pb.md", &text).unwrap_err().to_string();
        assert!(msg.contains("engine: unknown engine `tgi`"), "{msg}");
        assert!(
            msg.contains("section `Search space`: invalid YAML"),
            "{msg}"
        );
    }
}
