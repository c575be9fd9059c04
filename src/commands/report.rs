//! `forge report RUN_OR_STORE [--format …] [-o FILE]`: read a run (or a store's latest
//! run) and print it, or write it to a file; `forge report --list STORE`: every run of a
//! store in a line; `--compare RUN_A RUN_B`: two runs side by side; `--prices`: the
//! built-in GPU-hour prices.

use std::process::ExitCode;

use crate::cli::ReportArgs;
use crate::{record, report, store};

/// `forge report`.
pub fn main(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if args.prices {
        crate::term::print(&prices())?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.list {
        crate::term::print(&list(&args.path)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = match &args.compare {
        None if let Some(text) = campaign(&args.path, args.format) => text?,
        Some(pair) => {
            let load = |p: &std::path::Path| record::load(&store::resolve_run_path(p)?);
            let (a, b) = (load(&pair[0])?, load(&pair[1])?);
            report::side::render(&a, &b, args.format, args.gpu_hour_usd)?
        }
        None => {
            let run = record::load(&store::resolve_run_path(&args.path)?)?;
            report::render(&run, args.format, args.gpu_hour_usd)?
        }
    };
    match &args.output {
        Some(file) => {
            store::write_atomic(file, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("-o {}: {e}", file.display()))?;
            eprintln!("forge: wrote {}", file.display());
        }
        None => crate::term::print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `forge report --list STORE`: one line per run, oldest first; a run that cannot be read
/// says why on its line and the list goes on.
fn list(path: &std::path::Path) -> anyhow::Result<String> {
    let root = if path.file_name().is_some_and(|n| n == "runs") {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    let runs = store::Store::new(root).runs()?;
    anyhow::ensure!(
        !runs.is_empty(),
        "{}: no runs in this store",
        root.display()
    );
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header([
        "run",
        "model",
        "engine",
        "gpu",
        "state",
        "gain over baseline",
    ]);
    for r in runs {
        let name = r
            .path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into());
        match record::load(&r.path) {
            Ok(run) => t.add_row(line(name, &run)),
            Err(e) => t.add_row([name, format!("unreadable: {}", crate::term::error_text(&e))]),
        };
    }
    Ok(t.lines().map(|l| l.trim_end().to_string() + "\n").collect())
}

fn line(name: String, run: &record::LoadedRun) -> Vec<String> {
    let s = report::RunSummary::of(run);
    let st = run.settings.as_ref();
    let gpu = st.map_or("—".to_string(), |st| match &st.engine {
        record::EngineChoice::Sim { gpu, .. } => format!("{gpu} (simulated)"),
        _ => st
            .hardware
            .as_ref()
            .map_or(st.device.as_str().to_string(), |h| h.gpu_type.clone()),
    });
    let gain = match (&s.gain, &s.chained_gain) {
        (Some(g), _) => format!("{:+.1} % [{:+.1}, {:+.1}]", g.gain_pct, g.lo_pct, g.hi_pct),
        (None, Some(g)) => format!("{:+.1} % (chained, approximate)", g.gain_pct),
        (None, None) => "—".to_string(),
    };
    vec![
        name,
        st.map_or("—".to_string(), |st| st.model.clone()),
        st.map_or("—".to_string(), |st| {
            st.engine.recipe_engine().as_str().to_string()
        }),
        gpu,
        s.state.to_string(),
        gain,
    ]
}

/// `forge report --prices`: the built-in GPU-hour prices with their sources.
fn prices() -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(["gpu", "usd/GPU-hour", "offering", "source", "read"]);
    for p in report::cost::PRICES {
        t.add_row([
            p.gpu.to_string(),
            format!("{:.2}", p.usd_per_gpu_hour),
            p.offering.to_string(),
            p.source.to_string(),
            p.as_of.to_string(),
        ]);
    }
    let mut out: String = t.lines().map(|l| l.trim_end().to_string() + "\n").collect();
    out.push_str(
        "On-demand prices move by tens of percent within months: price your own with --gpu-hour-usd.\n",
    );
    out
}

/// The report of a campaign directory — `forge campaign`'s (`campaign.json`) or `forge
/// compare`'s (`compare.json`) — as `format`; `None` when `dir` is neither. The HTML page of
/// a campaign is rendered afresh from its ledger; the rest are its files as written.
fn campaign(dir: &std::path::Path, format: report::ReportFormat) -> Option<anyhow::Result<String>> {
    use crate::campaign;
    use report::ReportFormat::{Html, Json, Md, Table, Tsv};
    let read = |rel: &str| {
        crate::text::read(&dir.join(rel))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(rel).display()))
    };
    if dir.join(campaign::settings::SETTINGS_FILE).is_file() {
        return Some(match format {
            Html => campaign_page(dir),
            Md | Table => read(campaign::report::FINAL_REPORT_FILE)
                .or_else(|_| read(campaign::report::CHECKPOINT_FILE)),
            Tsv | Json => Err(not_one_run(dir)),
        });
    }
    if dir.join(crate::compare::settings::SETTINGS_FILE).is_file() {
        return Some(match format {
            Html => read(crate::compare::html::HTML_FILE),
            Md | Table => read(crate::compare::artifacts::SUMMARY_FILE),
            Tsv | Json => Err(not_one_run(dir)),
        });
    }
    None
}

/// A campaign's page, rendered afresh from `campaign.json` and its ledger.
fn campaign_page(dir: &std::path::Path) -> anyhow::Result<String> {
    use crate::campaign;
    let s = campaign::settings::Settings::load(dir)?;
    let ledger = campaign::ledger::Ledger::read(dir)?;
    let charts = campaign::html::charts(dir, &s, &ledger);
    Ok(campaign::html::page(dir, &s, &ledger, &charts))
}

fn not_one_run(dir: &std::path::Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: a campaign's report is HTML, Markdown or a table (--format html|md|table); TSV and JSON are a tune run's",
        dir.display()
    )
}
