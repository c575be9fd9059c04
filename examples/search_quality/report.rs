//! The bench's tables: each scenario's setup line, the sweep's summary, the agent against
//! random search.

use forge::recipe::Recipe;
use forge::stats::percentile;
use forge::tune::score;

use crate::bench::{Bench, Sweep, recipe_of};
use crate::scenarios::REACH;
use crate::{AgentRun, Options};

/// The `q`-quantile (0..1) of `v`, numpy's linear interpolation; NaN when empty.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, q * 100.0).unwrap_or(f64::NAN)
}

pub fn print_path(b: &Bench, which: &str, run: &AgentRun) {
    println!("Agent path, {} ({which}):\n", b.name);
    println!("```");
    for l in &run.path {
        println!("{l}");
    }
    println!("stop: {}", run.stop);
    println!("```\n");
}

/// The scenario's setup line: objective, workload, and what the defaults get.
pub fn setup_line(b: &Bench, sw: &Sweep) -> String {
    let s = &b.settings;
    let mut slo = Vec::new();
    for (n, v) in [
        ("TTFT", s.slo.ttft_ms),
        ("TPOT", s.slo.tpot_ms),
        ("E2EL", s.slo.e2el_ms),
    ] {
        if let Some(v) = v {
            slo.push(format!("{n} ≤ {v} ms"));
        }
    }
    let objective = match s.objective {
        forge::record::Objective::Throughput => "output tok/s",
        forge::record::Objective::Goodput => "goodput (req/s within SLO)",
        forge::record::Objective::Latency => "1 / p99 E2EL",
    };
    let st = &b.stats;
    let timing = match st.mean_arrival_rate {
        Some(r) => format!("trace at {r:.1} req/s"),
        None => "all at once".into(),
    };
    let prefix = if st.prefix_share > 0.01 {
        format!(", {:.0} % shared prefix", st.prefix_share * 100.0)
    } else {
        String::new()
    };
    let exact = b.instrument(0.0);
    let defaults = match exact.and_then(|mut i| {
        b.measure(&mut i, &b.baseline, "defaults")
            .map_err(anyhow::Error::msg)
    }) {
        Ok(m) if !m.sla_ok => {
            format!("miss the SLA ({})", score::sla_violations(&m, s).join("; "))
        }
        Ok(m) if m.value <= 0.0 => "score 0 (no request within the SLO)".into(),
        Ok(_) => format!("score {:.1} % of the best", sw.baseline / sw.best * 100.0),
        Err(e) => format!("do not boot: {e}"),
    };
    let sd = |r: &Recipe| objective_noise(b, r).map_or("—".into(), |x| format!("{x:.1} %"));
    let noise = format!("{} / {}", sd(&b.baseline), sd(&recipe_of(b, &sw.best_key)));
    format!(
        "| {} | {objective}{} | {} requests, {:.0} → {:.0} tokens{prefix}, concurrency {}, {timing} | {defaults} | {noise} |",
        b.name,
        if slo.is_empty() {
            String::new()
        } else {
            format!(" ({})", slo.join(", "))
        },
        st.requests,
        st.prompt_tokens.mean,
        st.output_tokens.mean,
        s.concurrency,
    )
}

/// Standard deviation of ln(objective) over 16 noisy runs of `r`, %: how much the
/// run-to-run noise moves the score (a threshold metric such as goodput amplifies it).
fn objective_noise(b: &Bench, r: &Recipe) -> Option<f64> {
    let mut instrument = b.instrument(b.settings_noise()).ok()?;
    let v: Vec<f64> = (0..16)
        .filter_map(|k| b.measure(&mut instrument, r, &format!("noise-{k}")).ok())
        .filter(|m| m.sla_ok && m.value > 0.0)
        .map(|m| m.value.ln())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    Some(var.sqrt() * 100.0)
}

pub fn report_sweep(b: &Bench, sw: &Sweep, o: &Options) {
    eprintln!(
        "{}: {} configs, {} feasible, baseline {:.4} best {:.4} ({:.1} s); best {}",
        b.name,
        sw.total,
        sw.feasible.len(),
        sw.baseline,
        sw.best,
        sw.seconds,
        sw.best_key
    );
    if o.top > 0 {
        let mut f = sw.feasible.clone();
        f.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (k, s) in f.iter().take(o.top) {
            eprintln!("  {s:.4} {k}");
        }
    }
}

/// One scenario's line of the table.
#[derive(Clone)]
pub struct Summary {
    name: &'static str,
    total: usize,
    feasible: usize,
    good: usize,
    baseline_pct: f64,
    /// Per agent run: experiments to reach (cap + 1 when not reached).
    agent: Vec<f64>,
    capped: usize,
    runs_to_reach: Vec<f64>,
    final_pct: Vec<f64>,
    experiments: Vec<f64>,
    rule_pushed: Vec<f64>,
    lost: Vec<f64>,
    random: Vec<f64>,
}

pub fn summarize(b: &Bench, sw: &Sweep, runs: &[AgentRun], rnd: &[u32], cap: u32) -> Summary {
    let per = |f: &dyn Fn(&AgentRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    Summary {
        name: b.name,
        total: sw.total,
        feasible: sw.feasible.len(),
        good: sw.feasible.iter().filter(|(_, s)| sw.reached(*s)).count(),
        baseline_pct: sw.baseline / sw.best * 100.0,
        agent: per(&|r| r.reached.map_or(f64::from(cap) + 1.0, f64::from)),
        capped: runs.iter().filter(|r| r.reached.is_none()).count(),
        runs_to_reach: runs
            .iter()
            .filter_map(|r| r.runs_to_reach.map(f64::from))
            .collect(),
        final_pct: per(&|r| r.final_ratio * 100.0),
        experiments: per(&|r| f64::from(r.experiments)),
        rule_pushed: per(&|r| f64::from(r.rule_pushed)),
        lost: per(&|r| f64::from(r.lost)),
        random: rnd.iter().map(|&n| f64::from(n)).collect(),
    }
}

pub fn print_table(rows: &[Summary], o: &Options) {
    let err = if o.surrogate_err > 0.0 {
        format!(
            ", surrogate error σ = {} % (draw {})",
            o.surrogate_err, o.error_seed
        )
    } else {
        String::new()
    };
    println!(
        "\nbuilt-in agent: experiments to reach {:.0} % of the sweep's best score ({} noise seeds, {} % run-to-run noise{err}, cap {}; random search: {} orders)\n",
        REACH * 100.0,
        o.agent_seeds,
        o.noise,
        o.cap,
        o.random_seeds
    );
    println!(
        "| scenario | configs (feasible) | within 95 % | baseline / best | agent: experiments to 95 % (runs) | not reached | final / best | stops after | rule-pushed | true gains lost | random: median (p25–p75) | random ÷ agent |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut agent_all, mut random_all) = (Vec::new(), Vec::new());
    for r in rows {
        let a = quantile(&r.agent, 0.5);
        let rm = quantile(&r.random, 0.5);
        agent_all.push(a);
        random_all.push(rm);
        println!(
            "| {} | {} ({}) | {} | {:.1} % | {} ({}) | {}/{} | {:.1} % | {} | {} | {} | {} ({}–{}) | {} |",
            r.name,
            r.total,
            r.feasible,
            r.good,
            r.baseline_pct,
            fmt_n(a, o.cap),
            fmt_n(quantile(&r.runs_to_reach, 0.5), u32::MAX),
            r.capped,
            r.agent.len(),
            quantile(&r.final_pct, 0.5),
            fmt_n(quantile(&r.experiments, 0.5), u32::MAX),
            fmt_n(quantile(&r.rule_pushed, 0.5), u32::MAX),
            fmt_n(quantile(&r.lost, 0.5), u32::MAX),
            fmt_n(rm, u32::MAX),
            fmt_n(quantile(&r.random, 0.25), u32::MAX),
            fmt_n(quantile(&r.random, 0.75), u32::MAX),
            ratio(rm, a, o.cap)
        );
    }
    let a = quantile(&agent_all, 0.5);
    let rm = quantile(&random_all, 0.5);
    println!(
        "\nmedian over scenarios: agent {} experiments, random search {}; random ÷ agent {}",
        fmt_n(a, o.cap),
        fmt_n(rm, u32::MAX),
        ratio(rm, a, o.cap)
    );
}

/// random ÷ agent; a capped agent counts as cap + 1 (so the ratio is an upper bound).
fn ratio(random: f64, agent: f64, cap: u32) -> String {
    if agent <= 0.0 {
        return "—".into();
    }
    let bound = if agent > f64::from(cap) { "< " } else { "" };
    format!("{bound}{:.1}×", random / agent)
}

fn fmt_n(x: f64, cap: u32) -> String {
    if x.is_nan() {
        "—".into()
    } else if x > f64::from(cap) {
        format!("> {cap}")
    } else if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
