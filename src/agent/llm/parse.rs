//! Reading an LLM reply strictly. The JSON object is found as plain JSON, else in a fenced
//! ```json block, else as the first balanced `{...}` (braces inside strings ignored). It
//! must have the original tool's shape, its layer must be the current layer, and every
//! change must name a knob of the playbook's search space for that layer, take one of that
//! knob's legal values (allowlist, [`AgentContext::legal`], not already tried), and change
//! something. Anything else is an error whose text is sent back to the LLM verbatim.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::http::clean;
use crate::agent::{AgentContext, Proposal};
use crate::engine::allowlist as knobs;
use crate::recipe::Layer;
use crate::recipe::Recipe;

/// Most knobs one proposal may change (one experiment, one targeted mutation).
pub const MAX_CHANGES: usize = 3;
/// Largest gain a reply may claim, percent (recorded as a prediction; it buys nothing).
pub const MAX_CLAIMED_GAIN_PCT: f64 = 1000.0;
/// Longest rationale kept, characters.
pub const MAX_RATIONALE_CHARS: usize = 800;

/// A knob of the current layer with its legal and excluded values from the incumbent.
#[derive(Debug, Clone, PartialEq)]
pub struct KnobSpace {
    /// Knob name.
    pub knob: String,
    /// The incumbent's effective value (`null` when unknown).
    pub current: Value,
    /// Values a proposal may set (the playbook's, in its order).
    pub legal: Vec<Value>,
    /// Values left out, with the reason.
    pub excluded: Vec<(Value, String)>,
}

/// The playbook's search space for the current layer, filtered by the allowlist, the
/// context's legality check (the KV-capacity memory model, GPU gates) and the tried set.
pub fn legal_space(ctx: &AgentContext<'_>) -> Vec<KnobSpace> {
    let Some(space) = ctx.playbook.space.get(&ctx.layer) else {
        return Vec::new();
    };
    space
        .iter()
        .map(|(knob, values)| {
            let current = ctx.effective.get(knob).cloned().unwrap_or(Value::Null);
            let mut ks = KnobSpace {
                knob: knob.clone(),
                current,
                legal: Vec::new(),
                excluded: Vec::new(),
            };
            for v in values {
                let mut one = BTreeMap::new();
                one.insert(knob.clone(), v.clone());
                match check_changes(ctx, &one) {
                    Ok(_) => ks.legal.push(v.clone()),
                    Err(why) => ks.excluded.push((v.clone(), why)),
                }
            }
            ks
        })
        .collect()
}

/// Parse and validate a reply into a proposal for `ctx` (cost left at 0).
pub fn parse_reply(text: &str, ctx: &AgentContext<'_>) -> Result<Proposal, String> {
    let v = extract_json(text)?;
    let obj = v.as_object().ok_or("the reply must be one JSON object")?;
    only_keys(
        obj,
        &[
            "rationale",
            "mutation",
            "expected_throughput_delta_pct",
            "expected_accuracy_delta",
        ],
        "",
    )?;
    let rationale = match obj.get("rationale") {
        Some(Value::String(s)) if !s.trim().is_empty() => clean(s, MAX_RATIONALE_CHARS),
        _ => return Err("`rationale` must be a non-empty string".into()),
    };
    let changes = mutation(obj.get("mutation"), ctx)?;
    let proposal = Proposal {
        rationale,
        layer: ctx.layer,
        changes,
        expected_throughput_delta_pct: number(obj, "expected_throughput_delta_pct")?
            .map(|g| g.clamp(-100.0, MAX_CLAIMED_GAIN_PCT)),
        expected_accuracy_delta: number(obj, "expected_accuracy_delta")?
            .map(|a| a.clamp(-1.0, 1.0)),
        cost_usd: 0.0,
        from_surrogate: false,
        rejected: Vec::new(),
    };
    if !proposal.changes.is_empty() {
        check_changes(ctx, &proposal.changes)?;
    }
    Ok(proposal)
}

/// What a refused reply proposed, as far as it can be read: its changes (when its JSON has
/// a `mutation.changes` object) and its rationale, cleaned.
pub fn salvage(text: &str) -> (BTreeMap<String, Value>, String) {
    let Ok(v) = extract_json(text) else {
        return (BTreeMap::new(), String::new());
    };
    let changes = v
        .pointer("/mutation/changes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .take(MAX_CHANGES * 4)
                .map(|(k, v)| (clean(k, 64), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let rationale = v
        .get("rationale")
        .and_then(Value::as_str)
        .map(|r| clean(r, MAX_RATIONALE_CHARS))
        .unwrap_or_default();
    (changes, rationale)
}

fn mutation(m: Option<&Value>, ctx: &AgentContext<'_>) -> Result<BTreeMap<String, Value>, String> {
    let m = m
        .and_then(Value::as_object)
        .ok_or("`mutation` must be an object {\"layer\": ..., \"changes\": {...}}")?;
    only_keys(m, &["layer", "changes"], "mutation.")?;
    let layer = m.get("layer").and_then(layer_of).ok_or(format!(
        "`mutation.layer` must be \"{}\" (or {})",
        ctx.layer.as_str(),
        ctx.layer.number()
    ))?;
    if layer != ctx.layer {
        return Err(format!(
            "`mutation.layer` is `{}` but this step tunes layer `{}` only",
            layer.as_str(),
            ctx.layer.as_str()
        ));
    }
    let changes = m
        .get("changes")
        .and_then(Value::as_object)
        .ok_or("`mutation.changes` must be an object of field: value ({} = converged)")?;
    if changes.len() > MAX_CHANGES {
        return Err(format!(
            "{} changes proposed; change one knob (at most {MAX_CHANGES}) per experiment",
            changes.len()
        ));
    }
    Ok(changes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

fn layer_of(v: &Value) -> Option<Layer> {
    match v {
        Value::String(s) => [Layer::Config, Layer::Quant, Layer::Kernel]
            .into_iter()
            .find(|l| l.as_str() == s.trim().to_lowercase()),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(Layer::from_number),
        _ => None,
    }
}

fn only_keys(obj: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unexpected key `{prefix}{}` (allowed: {})",
            clean(k, 60),
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn number(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!(
            "`{key}` must be a number or null, got {}",
            clean(&other.to_string(), 40)
        )),
    }
}

/// Every change on its own (search space, allowlist, a real change), then the candidate as
/// a whole (legality, not tried before).
fn check_changes(
    ctx: &AgentContext<'_>,
    changes: &BTreeMap<String, Value>,
) -> Result<Recipe, String> {
    let errors: Vec<String> = changes
        .iter()
        .filter_map(|(k, v)| check_one(ctx, k, v).err())
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let cand = ctx.incumbent.mutate(ctx.layer, changes);
    if cand.id == ctx.incumbent.id {
        return Err("this changes nothing: the recipe would stay the same".into());
    }
    (ctx.legal)(&cand)
        .map_err(|e| format!("infeasible on this GPU and model: {}", clean(&e.why, 300)))?;
    if (ctx.is_tried)(&cand) {
        return Err("this configuration was already tried from the current best".into());
    }
    Ok(cand)
}

fn check_one(ctx: &AgentContext<'_>, knob: &str, value: &Value) -> Result<(), String> {
    let knob_c = clean(knob, 60);
    let space = ctx.playbook.space.get(&ctx.layer);
    let Some(values) = space.and_then(|s| s.get(knob)) else {
        let names: Vec<&str> = space
            .map(|s| s.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Err(format!(
            "`{knob_c}` is not a {} knob of this search space (allowed: {})",
            ctx.layer.as_str(),
            names.join(", ")
        ));
    };
    knobs::check(ctx.incumbent.engine, ctx.layer, knob, value).map_err(|e| clean(&e.why, 300))?;
    let reset = value.is_null() && ctx.layer == Layer::Config;
    if !reset && !values.iter().any(|v| same(v, value)) {
        return Err(format!(
            "{knob_c}: {} is not one of the search space's values ({})",
            clean(&value.to_string(), 40),
            values
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let current = ctx.effective.get(knob);
    if !reset && current.is_some_and(|c| same(c, value)) {
        return Err(format!(
            "{knob_c} is already {value}; propose a different value"
        ));
    }
    if reset && !ctx.incumbent.config.contains_key(knob) {
        return Err(format!("{knob_c} is already at the engine default"));
    }
    Ok(())
}

/// JSON equality, with numbers compared by value (512 == 512.0 is still refused by the
/// allowlist's integer check).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The JSON object of a reply: plain JSON, a fenced ```json block, or the first balanced
/// `{...}`.
pub fn extract_json(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the reply is empty; answer with one JSON object".into());
    }
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Ok(v);
    }
    if let Some(v) = fenced(t).and_then(|b| serde_json::from_str::<Value>(b).ok()) {
        return Ok(v);
    }
    let Some(obj) = first_object(t) else {
        return Err("no JSON object found in the reply; answer with one JSON object only".into());
    };
    serde_json::from_str(obj)
        .map_err(|e| format!("the JSON object in the reply does not parse: {e}"))
}

/// Body of the first ``` fence (language tag `json` or none).
fn fenced(t: &str) -> Option<&str> {
    let start = t.find("```")?;
    let rest = &t[start + 3..];
    let nl = rest.find('\n')?;
    let tag = rest[..nl].trim();
    if !(tag.is_empty() || tag.eq_ignore_ascii_case("json")) {
        return None;
    }
    let body = &rest[nl + 1..];
    Some(&body[..body.find("```")?])
}

/// The first balanced `{...}`, ignoring braces inside JSON strings.
fn first_object(t: &str) -> Option<&str> {
    let start = t.find('{')?;
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, c) in t[start..].char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&t[start..start + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_object_three_ways() {
        let obj = json!({"a": 1});
        assert_eq!(extract_json(" {\"a\": 1} ").unwrap(), obj);
        let fenced = "Here you go:\n```json\n{\"a\": 1}\n```\nthanks";
        assert_eq!(extract_json(fenced).unwrap(), obj);
        let plain_fence = "```\n{\"a\": 1}\n```";
        assert_eq!(extract_json(plain_fence).unwrap(), obj);
        let inline = "I propose {\"a\": 1, \"s\": \"} { \\\" }\"} and that's it {x}";
        assert_eq!(
            extract_json(inline).unwrap(),
            json!({"a": 1, "s": "} { \" }"})
        );
    }

    #[test]
    fn reports_garbage() {
        assert!(extract_json("").unwrap_err().contains("empty"));
        assert!(
            extract_json("no json here")
                .unwrap_err()
                .contains("no JSON object")
        );
        assert!(
            extract_json("{\"a\": 1,}")
                .unwrap_err()
                .contains("does not parse")
        );
        assert!(
            extract_json("{\"a\": {\"b\": 1}")
                .unwrap_err()
                .contains("no JSON object")
        );
    }

    #[test]
    fn layers_by_name_or_number() {
        assert_eq!(layer_of(&json!("Config")), Some(Layer::Config));
        assert_eq!(layer_of(&json!(2)), Some(Layer::Quant));
        assert_eq!(layer_of(&json!(7)), None);
        assert_eq!(layer_of(&json!(true)), None);
    }
}
