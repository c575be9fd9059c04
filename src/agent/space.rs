//! The neighbourhood of the incumbent in the playbook's search space: every single-knob
//! move one or two steps away (ordered knobs) or to another value (switches and choices).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::playbook::{Direction, Playbook};
use crate::recipe::Layer;

/// One single-knob move.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// Knob name.
    pub knob: String,
    /// Current effective value.
    pub from: Value,
    /// Proposed value.
    pub to: Value,
    /// Steps along an ordered knob (negative = down); 0 for switches and choices.
    pub steps: i32,
}

/// All moves for `layer` around `effective` (the incumbent's values, defaults included).
pub fn neighbours(pb: &Playbook, layer: Layer, effective: &BTreeMap<String, Value>) -> Vec<Move> {
    let Some(knobs) = pb.space.get(&layer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (knob, values) in knobs {
        let from = effective.get(knob).cloned().unwrap_or(Value::Null);
        if values.iter().all(Value::is_number) {
            out.extend(ordered_moves(knob, &from, values));
        } else {
            out.extend(values.iter().filter(|v| **v != from).map(|v| Move {
                knob: knob.clone(),
                from: from.clone(),
                to: v.clone(),
                steps: 0,
            }));
        }
    }
    out
}

fn sorted_numbers(values: &[Value]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

fn ordered_moves(knob: &str, from: &Value, values: &[Value]) -> Vec<Move> {
    let nums = sorted_numbers(values);
    let cur = from.as_f64();
    let below: Vec<f64> = nums
        .iter()
        .copied()
        .filter(|x| cur.is_none_or(|c| *x < c))
        .collect();
    let above: Vec<f64> = nums
        .iter()
        .copied()
        .filter(|x| cur.is_none_or(|c| *x > c))
        .collect();
    let mut out = Vec::new();
    for (i, x) in below.iter().rev().take(2).enumerate() {
        out.push(mv(knob, from, *x, values, -(i as i32 + 1)));
    }
    for (i, x) in above.iter().take(2).enumerate() {
        out.push(mv(knob, from, *x, values, i as i32 + 1));
    }
    out
}

fn mv(knob: &str, from: &Value, x: f64, values: &[Value], steps: i32) -> Move {
    // Keep the playbook's own JSON spelling (integer stays integer).
    let to = values
        .iter()
        .find(|v| v.as_f64() == Some(x))
        .cloned()
        .unwrap_or(Value::from(x));
    Move {
        knob: knob.to_string(),
        from: from.clone(),
        to,
        steps,
    }
}

/// True when a move goes the way a rule's direction asks.
pub fn matches_direction(m: &Move, d: &Direction) -> bool {
    match d {
        Direction::Up => m.steps > 0,
        Direction::Down => m.steps < 0,
        Direction::To(v) => &m.to == v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::EngineKind;
    use serde_json::json;

    #[test]
    fn ordered_knobs_get_one_and_two_step_moves() {
        let pb = Playbook::bundled(EngineKind::Vllm).unwrap();
        let mut eff = BTreeMap::new();
        eff.insert("max_num_seqs".to_string(), json!(256));
        let moves: Vec<Move> = neighbours(&pb, Layer::Config, &eff)
            .into_iter()
            .filter(|m| m.knob == "max_num_seqs")
            .collect();
        let tos: Vec<(i64, i32)> = moves
            .iter()
            .map(|m| (m.to.as_i64().unwrap(), m.steps))
            .collect();
        assert_eq!(tos, vec![(192, -1), (128, -2), (384, 1), (512, 2)]);
    }

    #[test]
    fn off_grid_values_and_switches() {
        let pb = Playbook::bundled(EngineKind::Vllm).unwrap();
        let mut eff = BTreeMap::new();
        eff.insert("max_num_seqs".to_string(), json!(1000));
        eff.insert("enable_prefix_caching".to_string(), json!(true));
        let moves = neighbours(&pb, Layer::Config, &eff);
        let seqs: Vec<i64> = moves
            .iter()
            .filter(|m| m.knob == "max_num_seqs")
            .map(|m| m.to.as_i64().unwrap())
            .collect();
        assert_eq!(seqs, vec![768, 512, 1024]);
        let pc: Vec<&Move> = moves
            .iter()
            .filter(|m| m.knob == "enable_prefix_caching")
            .collect();
        assert_eq!(pc.len(), 1);
        assert_eq!(pc[0].to, json!(false));
        assert!(
            matches_direction(&moves[0], &Direction::Down)
                || matches_direction(&moves[0], &Direction::Up)
                || moves[0].steps == 0
        );
    }
}
