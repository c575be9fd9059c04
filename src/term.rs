//! Writing to the terminal the way Unix tools do: a closed pipe (`forge ... | head`) ends
//! the output quietly instead of panicking, and an error is printed as one message that
//! says each cause once.

use std::io::Write;

/// Write `text` to stdout; a broken pipe is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// [`print`] with a trailing newline.
pub fn println(text: &str) -> std::io::Result<()> {
    print(&format!("{text}\n"))
}

/// The text `forge` prints after `error: `: the error and each cause in its chain that the
/// text so far does not already say. (anyhow's `{:#}` prints every cause, so an error whose
/// message already includes its source would say it twice.)
pub fn error_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("w.jsonl: cannot read: {source}")]
    struct SaysItsSource {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let doubled = anyhow::Error::new(SaysItsSource { source: io() });
        assert_eq!(
            format!("{doubled:#}"),
            "w.jsonl: cannot read: no such file: no such file"
        );
        assert_eq!(error_text(&doubled), "w.jsonl: cannot read: no such file");
        // Context that does not repeat its cause keeps it.
        let chained = anyhow::Error::new(io()).context("reading w.jsonl");
        assert_eq!(error_text(&chained), "reading w.jsonl: no such file");
        // A full disk while writing a run's files: the OS text once.
        let full = std::io::Error::from_raw_os_error(28);
        let e = anyhow::Error::new(crate::store::StoreError::io(
            std::path::Path::new("run/experiments.tsv"),
            full,
        ));
        let text = error_text(&e);
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
    }
}
