//! `forge report RUN --format html`: one self-contained page per tune run — inline CSS and
//! inline SVG charts ([`super::charts`]), no script, no font or request to any network —
//! that reads the same with JavaScript off, on a phone and on paper. It leads with the
//! headline (the gain with its interval, what to deploy as the exact command, the accuracy
//! the floor judged, the cost per million tokens), then the charts, the answers against the
//! baseline's, every experiment with the agent's rationale, and the failures with the
//! engine's own lines.

use std::fmt::Write as _;

use super::charts::charts;
use super::render::{answer_lines, failure_details, gain_ci, headline, rationale};
use super::svg::esc;
use super::{LoadedRun, RunSummary};
use crate::record::recommended;

/// The style every forge page shares (the tune report, the compare page).
pub const CSS: &str = "body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;background:#fafafa}\
main{max-width:980px;margin:0 auto;padding:16px}\
h1{font-size:1.45em;margin:.4em 0;overflow-wrap:anywhere}h2{font-size:1.15em;margin:1.6em 0 .5em}\
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:12px 16px;margin:12px 0}\
ul{padding-left:1.1em;margin:.3em 0}li{overflow-wrap:anywhere}\
pre{background:#f3f3f3;padding:8px 10px;border-radius:4px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:13px}\
svg.chart{width:100%;height:auto;display:block;margin:8px 0}\
.table-wrap{overflow-x:auto}table{border-collapse:collapse;font-size:13px;width:100%}\
th,td{border-bottom:1px solid #e6e6e6;padding:4px 6px;text-align:left;vertical-align:top}\
td.num{text-align:right;white-space:nowrap}td.why{min-width:16em;overflow-wrap:anywhere}\
.kept{color:#007a55;font-weight:600}.reverted,.failed{color:#b34700}.inconclusive{color:#8a6100}\
@media print{body{background:#fff}section{border:none;break-inside:avoid}}";

/// The command that deploys the recommended recipe, as `forge recipe command` prints it.
fn deploy_command(run: &LoadedRun) -> Option<String> {
    let best = recommended(&run.rows)?;
    let source = run.dir.join(crate::store::BEST_RECIPE_FILE);
    let source = source.display().to_string();
    let version = crate::engine::vllm::flags::Version::CURRENT.to_string();
    let target = crate::engine::deploy::Target {
        host: "127.0.0.1",
        port: 8000,
        vllm_version: &version,
        source: &source,
    };
    let d = crate::engine::deploy::render(&best.recipe, &target).ok()?;
    Some(crate::engine::deploy::display(&d))
}

/// A page's opening, up to `<main>`: the document head with `title` and [`CSS`].
pub fn open(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style></head><body><main>",
        esc(title)
    )
}

/// The whole page.
pub fn page(run: &LoadedRun, s: &RunSummary) -> String {
    page_with(run, s, &charts(run, s))
}

/// The whole page around `charts` (already rendered: the run's views also write them as
/// files).
pub fn page_with(run: &LoadedRun, s: &RunSummary, charts: &[(&str, String)]) -> String {
    let model = run.settings.as_ref().map_or("run", |st| st.model.as_str());
    let mut out = open(&format!("forge report — {model}"));
    let mut lines = headline(run, s);
    let title = lines.remove(0).replace("=== ", "").replace(" ===", "");
    let _ = write!(
        out,
        "<h1>{}</h1><section class=\"headline\"><ul>",
        esc(&title)
    );
    for l in lines {
        let _ = write!(out, "<li>{}</li>", esc(&l));
    }
    out.push_str("</ul>");
    if let Some(cmd) = deploy_command(run) {
        let _ = write!(
            out,
            "<h2>Deploy</h2><pre class=\"deploy\"><code>{}</code></pre>",
            esc(&cmd)
        );
    }
    out.push_str("</section>");
    for (stem, svg) in charts {
        let _ = write!(out, "<section class=\"chart-{stem}\">{svg}</section>");
    }
    pre_section(
        &mut out,
        "Answers against the baseline's",
        &answer_lines(&run.rows),
    );
    experiments(&mut out, run);
    pre_section(
        &mut out,
        "Failures, with the engine's own lines",
        &failure_details(&run.rows),
    );
    out.push_str("</main></body></html>\n");
    out
}

/// A section of preformatted `lines` under `title`; nothing when there are none.
fn pre_section(out: &mut String, title: &str, lines: &[String]) {
    if !lines.is_empty() {
        let _ = write!(
            out,
            "<section><h2>{}</h2><pre>{}</pre></section>",
            esc(title),
            esc(&lines.join("\n"))
        );
    }
}

fn experiments(out: &mut String, run: &LoadedRun) {
    out.push_str("<section><h2>Experiments</h2><div class=\"table-wrap\"><table><thead><tr><th>exp</th><th>layer</th><th>status</th><th>tok/s</th><th>accuracy</th><th>gain [95 % CI]</th><th>rationale</th></tr></thead><tbody>");
    for r in &run.rows {
        let m = r.measurement.as_ref();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{st}\">{st}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"why\">{}</td></tr>",
            r.exp.map_or("—".to_string(), |e| e.to_string()),
            r.layer.as_str(),
            m.map_or("—".to_string(), |m| format!("{:.1}", m.output_throughput)),
            m.and_then(|m| m.accuracy)
                .map_or("—".to_string(), |a| format!("{a:.3}")),
            esc(&gain_ci(r)),
            esc(&rationale(r)),
            st = r.status.as_str(),
        );
    }
    out.push_str("</tbody></table></div></section>");
}
