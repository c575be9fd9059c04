//! The observed facts the playbook's rules test: the incumbent's latest measurement and
//! server facts, its effective knob values, the workload, the SLO, and what the engine says
//! about its host.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::record::settings::TuneSettings;
use crate::record::{Arm, ExperimentRow, Sample, Status};
use crate::workload::stats::WorkloadStats;

/// Facts for the playbook's rules, from the incumbent's latest sample in the history, its
/// `effective` knob values and the engine's `host` facts (llama.cpp: `cpu_cores`).
pub fn facts(
    history: &[ExperimentRow],
    effective: &BTreeMap<String, Value>,
    host: BTreeMap<String, f64>,
    stats: &WorkloadStats,
    s: &TuneSettings,
) -> BTreeMap<String, f64> {
    let mut f = BTreeMap::new();
    let latest = history.iter().rev().find_map(incumbent_sample);
    if let Some(sample) = latest {
        let (m, sf) = (&sample.m, &sample.facts);
        f.insert("p99_ttft_ms".into(), m.p99_ttft_ms);
        f.insert("p99_tpot_ms".into(), m.p99_tpot_ms);
        f.insert("p99_e2el_ms".into(), m.p99_e2el_ms);
        f.insert("median_ttft_ms".into(), m.median_ttft_ms);
        f.insert("median_tpot_ms".into(), m.median_tpot_ms);
        f.insert("failed".into(), m.failed as f64);
        if sf.available {
            f.insert("preemptions".into(), sf.preemptions);
            f.insert("peak_running".into(), sf.peak_running);
            f.insert("waiting_peak".into(), sf.peak_waiting);
            f.insert("kv_usage_peak".into(), sf.peak_kv_usage);
            f.insert("prefix_hit_rate".into(), sf.prefix_hit_rate());
        }
    }
    for (k, v) in effective {
        if let Some(x) = v.as_f64() {
            f.insert(k.clone(), x);
        }
    }
    f.insert("prefix_share".into(), stats.prefix_share);
    f.insert("mean_prompt_tokens".into(), stats.prompt_tokens.mean);
    f.insert("mean_output_tokens".into(), stats.output_tokens.mean);
    f.insert("concurrency".into(), s.concurrency as f64);
    f.extend(host);
    if let Some(r) = stats.mean_arrival_rate {
        f.insert("request_rate".into(), r);
    }
    for (name, v) in [
        ("slo_ttft_ms", s.slo.ttft_ms),
        ("slo_tpot_ms", s.slo.tpot_ms),
        ("slo_e2el_ms", s.slo.e2el_ms),
    ] {
        if let Some(v) = v {
            f.insert(name.into(), v);
        }
    }
    f
}

/// The latest sample, in `r`, of the configuration that is the incumbent once `r` is
/// applied: a kept row's (or the confirmation's) candidate — it just became, or is, the
/// incumbent — and otherwise the incumbent arm.
fn incumbent_sample(r: &ExperimentRow) -> Option<&Sample> {
    let arm = match r.status {
        Status::Kept | Status::Confirmation => Arm::Candidate,
        _ => Arm::Incumbent,
    };
    r.samples
        .iter()
        .rev()
        .find(|x| x.arm == arm || r.status == Status::Baseline)
}
