//! `--help` of every visible command, snapshot-tested against the real binary at a fixed
//! terminal width (clap's `wrap_help` reads `COLUMNS`/`LINES`; its default cap is 100), so
//! a changed flag, default or wording shows up in review. A second test walks the clap
//! command tree and fails when a visible command has no snapshot here.

mod common;

use clap::CommandFactory;
use common::bin::forge;

/// Every visible command path this file snapshots, with its snapshot name.
const COMMANDS: &[(&str, &[&str])] = &[
    ("forge", &[]),
    ("bench", &["bench"]),
    ("sim", &["sim"]),
    ("sim_serve", &["sim", "serve"]),
    ("sim_predict", &["sim", "predict"]),
    ("tune", &["tune"]),
    ("tune_resume", &["tune", "resume"]),
    ("compare", &["compare"]),
    ("compare_resume", &["compare", "resume"]),
    ("gap", &["gap"]),
    ("trace", &["trace"]),
    ("trace_analyze", &["trace", "analyze"]),
    ("profile", &["profile"]),
    ("campaign", &["campaign"]),
    ("campaign_resume", &["campaign", "resume"]),
    ("report", &["report"]),
    ("playbook", &["playbook"]),
    ("playbook_show", &["playbook", "show"]),
    ("playbook_validate", &["playbook", "validate"]),
    ("playbook_gates", &["playbook", "gates"]),
    ("recipe", &["recipe"]),
    ("recipe_command", &["recipe", "command"]),
    ("workload", &["workload"]),
    ("workload_synth", &["workload", "synth"]),
    ("workload_stats", &["workload", "stats"]),
    ("doctor", &["doctor"]),
];

/// `forge <path> --help` at 100 columns: stdout, trailing blanks trimmed, version filtered.
fn help(path: &[&str]) -> String {
    let out = forge(path)
        .arg("--help")
        .env("COLUMNS", "100")
        .env("LINES", "50")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path:?}: {stderr}");
    assert!(stderr.is_empty(), "{path:?}: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().all(|l| l.chars().count() <= 100),
        "{path:?}: a line is wider than 100 columns:\n{text}"
    );
    // clap indents blank lines inside a flag's help; trailing blanks carry no meaning and
    // editors strip them from snapshot files.
    let trimmed: Vec<&str> = text.lines().map(str::trim_end).collect();
    (trimmed.join("\n") + "\n").replace(env!("CARGO_PKG_VERSION"), "[VERSION]")
}

fn snapshot(name: &str) {
    let (_, path) = COMMANDS.iter().find(|(n, _)| *n == name).unwrap();
    let text = help(path);
    let usage = format!(
        "Usage: {}",
        ["forge"]
            .iter()
            .chain(path.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(
        text.contains(&usage),
        "{path:?}: no `{usage}` line:\n{text}"
    );
    insta::assert_snapshot!(name, text);
}

macro_rules! help_snapshots {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                snapshot($name);
            }
        )*
    };
}

help_snapshots! {
    forge_help => "forge",
    bench_help => "bench",
    sim_help => "sim",
    sim_serve_help => "sim_serve",
    sim_predict_help => "sim_predict",
    tune_help => "tune",
    tune_resume_help => "tune_resume",
    compare_help => "compare",
    compare_resume_help => "compare_resume",
    gap_help => "gap",
    trace_help => "trace",
    trace_analyze_help => "trace_analyze",
    profile_help => "profile",
    campaign_help => "campaign",
    campaign_resume_help => "campaign_resume",
    report_help => "report",
    playbook_help => "playbook",
    playbook_show_help => "playbook_show",
    playbook_validate_help => "playbook_validate",
    playbook_gates_help => "playbook_gates",
    recipe_help => "recipe",
    recipe_command_help => "recipe_command",
    workload_help => "workload",
    workload_synth_help => "workload_synth",
    workload_stats_help => "workload_stats",
    doctor_help => "doctor",
}

fn visible(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        visible(sub, &path, out);
    }
}

#[test]
fn every_visible_command_has_a_help_snapshot() {
    let mut cmd = forge::cli::Cli::command();
    cmd.build();
    let mut found = vec![vec![]];
    visible(&cmd, &[], &mut found);
    let mut covered: Vec<Vec<String>> = COMMANDS
        .iter()
        .map(|(_, p)| p.iter().map(|s| s.to_string()).collect())
        .collect();
    found.sort();
    covered.sort();
    assert_eq!(found, covered);
    // The hidden commands stay hidden from the top-level listing.
    let top = help(&[]);
    assert!(!top.contains("loopback-server"), "{top}");
    assert!(!top.contains("worker"), "{top}");
}
