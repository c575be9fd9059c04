//! The help-snapshot parser on real `vllm serve` help texts (recorded from vLLM 0.33.0 and
//! 0.10.2), and forge's flag table checked against them: every flag the table knows for a
//! version is spelled exactly as that version's help lists it.

use forge::engine::vllm::flags::{self, Kind, Version};
use forge::engine::vllm::help::HelpSnapshot;

const HELP_ALL_0_33: &str = include_str!("fixtures/vllm/help-all-0.33.0.txt");
const HELP_0_33: &str = include_str!("fixtures/vllm/help-0.33.0.txt");
const HELP_0_10: &str = include_str!("fixtures/vllm/help-0.10.2.txt");
const V0_10_2: Version = Version::new(0, 10, 2);

#[test]
fn full_listings_list_flags_and_the_group_summary_does_not() {
    let all = HelpSnapshot::parse(HELP_ALL_0_33);
    let old = HelpSnapshot::parse(HELP_0_10);
    let summary = HelpSnapshot::parse(HELP_0_33);
    assert!(all.lists_flags() && old.lists_flags());
    // Defect 4 of the original: plain `--help` of current vLLM lists groups only.
    assert!(!summary.lists_flags());
    assert!(summary.is_empty(), "{:?}", summary.entries());
    for o in [
        "--enable-prefix-caching",
        "--enable-chunked-prefill",
        "--attention-backend",
        "--speculative-config",
    ] {
        assert!(all.has(o), "{o}");
        assert!(!summary.has(o), "{o}");
    }
}

#[test]
fn the_0_33_listing_as_parsed() {
    let s = HelpSnapshot::parse(HELP_ALL_0_33);
    let neg = |o: &str| s.entry(o).and_then(|e| e.negation()).map(str::to_string);
    assert_eq!(
        neg("--enable-prefix-caching").as_deref(),
        Some("--disable-prefix-caching")
    );
    assert_eq!(
        neg("--enable-chunked-prefill").as_deref(),
        Some("--disable-chunked-prefill")
    );
    assert_eq!(
        neg("--enable-log-requests").as_deref(),
        Some("--disable-log-requests")
    );
    assert_eq!(
        neg("--enforce-eager").as_deref(),
        Some("--no-enforce-eager")
    );
    assert_eq!(
        neg("--async-scheduling").as_deref(),
        Some("--no-async-scheduling")
    );
    assert_eq!(neg("--disable-log-stats"), None);
    let gmu = s.entry("--device-memory-utilization").unwrap();
    assert_eq!(gmu.primary(), "--gpu-memory-utilization");
    let kv = s.entry("--kv-cache-dtype").unwrap();
    assert_eq!(kv.choices.as_ref().map(Vec::len), Some(22));
    assert!(kv.accepts("bfloat16") && kv.accepts("nvfp4") && !kv.accepts("bf16"));
    assert_eq!(s.entry("--block-size").unwrap().choices, None);
    assert_eq!(s.entry("-sc").unwrap().primary(), "--speculative-config");
    assert_eq!(s.entry("-cc").unwrap().primary(), "--compilation-config");
    assert!(s.has("--optimization-level") && !s.has("-O"));
    for gone in [
        "--swap-space",
        "--max-num-partial-prefills",
        "--no-enable-prefix-caching",
    ] {
        assert!(!s.has(gone), "{gone}");
    }
    assert_eq!(s.entry("--max-num-seqs").unwrap().group, "SchedulerConfig");
}

#[test]
fn the_0_10_2_listing_as_parsed() {
    let s = HelpSnapshot::parse(HELP_0_10);
    let neg = |o: &str| s.entry(o).and_then(|e| e.negation()).map(str::to_string);
    assert_eq!(
        neg("--enable-prefix-caching").as_deref(),
        Some("--no-enable-prefix-caching")
    );
    assert_eq!(
        neg("--enable-chunked-prefill").as_deref(),
        Some("--no-enable-chunked-prefill")
    );
    assert_eq!(
        neg("--disable-log-requests").as_deref(),
        Some("--no-disable-log-requests")
    );
    assert!(s.has("--swap-space") && s.has("--max-num-partial-prefills"));
    assert!(!s.has("--disable-chunked-prefill"));
    assert!(!s.has("--device-memory-utilization"));
    for absent in [
        "--attention-backend",
        "--performance-mode",
        "--optimization-level",
        "-sc",
    ] {
        assert!(!s.has(absent), "{absent}");
    }
    assert_eq!(s.entry("-O").unwrap().primary(), "--compilation-config");
    assert_eq!(
        s.entry("--kv-cache-dtype").unwrap().choices,
        Some(
            ["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc"]
                .map(String::from)
                .to_vec()
        )
    );
}

/// Every flag the table has for `version` is listed by the real help with exactly the
/// table's option strings, takes a value exactly when the table says so, and offers every
/// choice the table would render.
fn table_matches(text: &str, version: Version) {
    let snap = HelpSnapshot::parse(text);
    let mut problems = Vec::new();
    for f in flags::flags_for(version) {
        let Some(entry) = snap.entry(f.long) else {
            problems.push(format!("{}: not in the help", f.long));
            continue;
        };
        if entry.names != f.option_strings(version) {
            problems.push(format!(
                "{}: help lists {:?}, table {:?}",
                f.long,
                entry.names,
                f.option_strings(version)
            ));
        }
        if entry.takes_value == f.kind.is_switch() {
            problems.push(format!(
                "{}: takes a value? help {}",
                f.long, entry.takes_value
            ));
        }
        let table_choices: Vec<String> = match f.kind {
            Kind::Choice(c) => c
                .iter()
                .filter(|c| **c != "None")
                .map(|c| c.to_string())
                .collect(),
            Kind::IntChoice(c) => c.iter().map(|c| c.to_string()).collect(),
            _ => vec![],
        };
        for c in table_choices {
            if !entry.accepts(&c) {
                problems.push(format!("{}: help does not accept {c}", f.long));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "vLLM {version}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_flag_table_matches_vllm_0_33_help() {
    table_matches(HELP_ALL_0_33, Version::V0_33);
}

#[test]
fn the_flag_table_matches_vllm_0_10_2_help() {
    table_matches(HELP_0_10, V0_10_2);
}

#[test]
fn the_simulators_own_listing_parses_back_to_the_table() {
    for v in [V0_10_2, Version::V0_33] {
        table_matches(&flags::help_text(v), v);
    }
}
