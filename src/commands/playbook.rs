//! `forge playbook show|validate [PATH]`: print a playbook, or say what is wrong with it
//! and on which line; `forge playbook gates`: the quantization hardware gates.

use std::process::ExitCode;

use crate::cli::{GatesArgs, PlaybookArgs, PlaybookCmd};
use crate::engine::gates::{self, Gate};
use crate::playbook::{Playbook, resolve};

/// Run a playbook command.
pub fn main(cmd: PlaybookCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PlaybookCmd::Show(a) => show(&a),
        PlaybookCmd::Validate(a) => validate(&a),
        PlaybookCmd::Gates(a) => show_gates(&a),
    }
}

/// The engine's rows of the gate table; with `--gpu`, what each does on that GPU and why.
fn show_gates(a: &GatesArgs) -> anyhow::Result<ExitCode> {
    let rows: Vec<_> = gates::TABLE
        .iter()
        .filter(|r| r.engine == a.engine)
        .collect();
    anyhow::ensure!(
        !rows.is_empty(),
        "--engine {}: layer 2 of this engine has no hardware gates (it runs on the CPU or the model's own file types)",
        a.engine.as_str()
    );
    let gpu = match &a.gpu {
        Some(g) => Some(crate::hardware::gpus::lookup(g).ok_or_else(|| {
            anyhow::anyhow!(
                "--gpu {g}: not a GPU forge knows (one of {})",
                crate::hardware::gpus::names().join(", ")
            )
        })?),
        None => None,
    };
    let mut out = format!("Quantization hardware gates: {}\n", a.engine.display_name());
    for r in rows {
        out.push_str(&format!("\n{}\n", r.scheme.label()));
        let sm = |c: u32| format!("SM {}.{}", c / 10, c % 10);
        let native = r
            .native_from
            .map_or("no NVIDIA GPU".into(), |c| format!("{}+", sm(c)));
        let amd = if r.amd.is_empty() {
            "none".to_string()
        } else {
            r.amd.join(", ")
        };
        out.push_str(&format!("  native: NVIDIA {native}; AMD {amd}\n"));
        if let (Some((c, how)), None) = (r.fallback, gpu) {
            out.push_str(&format!("  from {}: {how}\n", sm(c)));
        }
        if let Some(g) = gpu {
            let verdict = match gates::check(a.engine, r.scheme, g) {
                Gate::Native => format!("runs natively on {}", g.name),
                Gate::Fallback(why) => format!("fallback: {why}"),
                Gate::Refused(why) => format!("refused: {why}"),
            };
            out.push_str(&format!("  {verdict}\n"));
        }
        out.push_str(&format!("  source: {}\n", r.source));
    }
    crate::term::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn show(a: &PlaybookArgs) -> anyhow::Result<ExitCode> {
    // Show prints even an invalid file (so it can be fixed), but says it is invalid.
    let text = match &a.path {
        Some(p) => crate::text::read(p).map_err(|e| anyhow::anyhow!(e.at(p)))?,
        None => Playbook::bundled(a.engine)?.text,
    };
    crate::term::print(&text)?;
    if let Some(p) = &a.path
        && let Err(e) = Playbook::parse(&p.display().to_string(), &text)
    {
        eprintln!("warning: this playbook does not validate:\n{e}");
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(a: &PlaybookArgs) -> anyhow::Result<ExitCode> {
    match resolve(a.path.as_ref(), a.engine) {
        Ok(p) => {
            let knobs: usize = p.space.values().map(|k| k.len()).sum();
            println!(
                "{}: ok — engine {:?}, {} sections, {} knobs in the search space, {} rules",
                p.source,
                p.engine,
                p.sections.len(),
                knobs,
                p.rules.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("hint: each line above is FILE[:LINE]: item: problem");
            Ok(ExitCode::from(1))
        }
    }
}
