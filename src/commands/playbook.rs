//! `forge playbook show|validate [PATH]`: print a playbook, or say what is wrong with it
//! and on which line.

use std::process::ExitCode;

use crate::cli::{PlaybookArgs, PlaybookCmd};
use crate::playbook::{Playbook, resolve};

/// Run a playbook command.
pub fn main(cmd: PlaybookCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PlaybookCmd::Show(a) => show(&a),
        PlaybookCmd::Validate(a) => validate(&a),
    }
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
