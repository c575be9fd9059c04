//! The HTML report in a real browser: a dry-run tune's `report.html` opened in headless
//! Chromium (Debian's `chromium`, installed by `scripts/test.sh`; the test skips, loudly,
//! without it unless `FORGE_REQUIRE_CHROMIUM=1`) at desktop and phone widths. Screenshots
//! are taken at both; the page is also loaded inside a test-only harness page whose script
//! reads it after layout and writes what it found into the DOM Chromium dumps: no console
//! error, every chart present with data, nothing wider than the window, and no request made
//! by the page (its resource timing is empty; the browser's own background requests are
//! not the page's, and every host resolves nowhere anyway).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::bin::{forge, run};
use common::sandbox::Sandbox;

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "/usr/bin/chromium", "chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var("FORGE_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "FORGE_REQUIRE_CHROMIUM=1 but no chromium"
        );
        eprintln!("SKIPPED: no chromium (scripts/test.sh installs Debian's)");
    }
    found
}

/// Chromium, headless, offline, with a fresh profile in `dir`.
fn browser(bin: &Path, dir: &Path, width: u32) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .arg(format!("--window-size={width},1600"));
    c
}

/// The harness: the report in an iframe of `width` pixels; after it loads, what the checks
/// need is written into `#result` as JSON.
fn harness(report: &Path, width: u32) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0">
<iframe id="f" src="{}" style="width:{width}px;height:1400px;border:0"></iframe>
<pre id="result">pending</pre>
<script>
document.getElementById('f').addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument;
  const w = d.defaultView;
  const charts = [...d.querySelectorAll('svg.chart')].map(s => ({{
    title: s.getAttribute('aria-label'),
    marks: s.querySelectorAll('.series .point, .series rect, .series polyline').length,
    width: s.getBoundingClientRect().width,
    clipped: [...s.querySelectorAll('text:not(.y-label)')].filter(t => {{
      const b = t.getBBox();
      return b.x < -1 || b.x + b.width > s.viewBox.baseVal.width + 1;
    }}).map(t => t.textContent)
  }}));
  const wide = [...d.querySelectorAll('h1, h2, li, section, p')]
    .filter(e => e.getBoundingClientRect().right > w.innerWidth + 1)
    .map(e => e.tagName + ': ' + e.textContent.slice(0, 60));
  const fetched = w.performance.getEntriesByType('resource').map(e => e.name);
  document.getElementById('result').textContent = JSON.stringify({{
    charts, wide, fetched, scrollWidth: d.documentElement.scrollWidth, innerWidth: w.innerWidth
  }});
}});
</script></body></html>"#,
        report.display()
    )
}

#[test]
fn the_dry_run_report_renders_offline_at_desktop_and_phone_widths() {
    let Some(bin) = chromium() else { return };
    let sb = Sandbox::new();
    let args = common::run::t4_layer2_dry_run(3);
    let out = sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.success(), "{}", out.stderr);
    let report = sb.run_dir().join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    // The verdicts, the throughput and the workload's shape (the latencies too once a recipe
    // other than the baseline is recommended).
    for title in [
        "Verdicts:",
        "Measured throughput",
        "Tokens/s per GPU against tokens/s per user, measured and predicted",
        "Cost of the SLA",
        "Time to first token, by percentile",
        "Time per output token, by percentile",
        "End-to-end latency, by percentile",
        "Workload: 50 requests",
    ] {
        assert!(html.contains(&format!("aria-label=\"{title}")), "{title}");
    }
    // The simulator's predicted curve sits under the measured points.
    assert!(html.contains("predicted: baseline"), "{html}");
    check_page(&bin, sb.path(), &report, 8);
}

/// A dry-run compare of the vLLM and SGLang twins: its `benchmark/report.html`, every
/// candidate charted per scenario.
#[test]
fn the_dry_run_compare_page_renders_offline_at_desktop_and_phone_widths() {
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = common::compare::synth_workload(dir.path(), 8);
    let campaign = dir.path().join("c");
    let out =
        run(common::compare::dry_compare(&campaign, &w).args(["--frameworks", "vllm,sglang"]));
    assert!(out.success(), "{}", out.stderr);
    check_page(&bin, dir.path(), &campaign.join("benchmark/report.html"), 1);
    // `forge report` on the campaign directory prints that page; TSV or JSON is refused.
    let report = |format: &str| run(forge(&["report"]).arg(&campaign).args(["--format", format]));
    let page = report("html");
    assert!(page.success(), "{}", page.stderr);
    let written = std::fs::read_to_string(campaign.join("benchmark/report.html")).unwrap();
    assert_eq!(page.stdout, written);
    // Each framework's best says where its rate search bracketed its capacity.
    let bracket = regex::Regex::new(
        r"everything at once within the SLA: this is its capacity|SLA met at \d+\.\d\d req/s offered",
    )
    .unwrap();
    assert_eq!(bracket.find_iter(&written).count(), 2, "{written}");
    let json = report("json");
    assert!(
        json.stderr
            .contains("a campaign's report is HTML, Markdown or a table"),
        "{}",
        json.stderr
    );
}

/// Open `report` at desktop and phone widths: screenshots, no console error, at least
/// `min_charts` charts each with data, nothing wider than the window, nothing fetched.
fn check_page(bin: &Path, dir: &Path, report: &Path, min_charts: usize) {
    assert!(report.is_file(), "{}", report.display());
    for (name, width) in [("desktop", 1280u32), ("phone", 390)] {
        let shot = dir.join(format!("{name}.png"));
        let o = browser(bin, dir, width)
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", report.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let png = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(png > 10_000, "{name}: screenshot of {png} bytes");
        assert!(
            !err.lines()
                .any(|l| l.contains("CONSOLE") && l.to_lowercase().contains("error")),
            "{name}: console errors: {err}"
        );

        let page = dir.join(format!("harness-{name}.html"));
        std::fs::write(&page, harness(report, width)).unwrap();
        let o = browser(bin, dir, width + 20)
            .args(["--virtual-time-budget=5000", "--dump-dom"])
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&o.stdout);
        let json = dom
            .split("<pre id=\"result\">")
            .nth(1)
            .and_then(|s| s.split("</pre>").next())
            .unwrap_or("")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!(
                "{name}: harness said {json:?} ({e}); {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        let charts = v["charts"].as_array().unwrap();
        assert!(charts.len() >= min_charts, "{name}: {v}");
        for c in charts {
            assert!(c["marks"].as_u64().unwrap() > 0, "{name}: empty chart {c}");
            assert_eq!(
                c["clipped"],
                serde_json::json!([]),
                "{name}: text cut off: {c}"
            );
            assert!(
                c["width"].as_f64().unwrap() <= f64::from(width),
                "{name}: {c}"
            );
        }
        assert!(
            v["wide"].as_array().unwrap().is_empty(),
            "{name}: overflowing: {v}"
        );
        // The page fetched nothing (its resource timing lists every request it made).
        assert_eq!(v["fetched"], serde_json::json!([]), "{name}: {v}");
        assert!(
            v["scrollWidth"].as_f64().unwrap() <= v["innerWidth"].as_f64().unwrap(),
            "{name}: the page scrolls sideways: {v}"
        );
    }
}
