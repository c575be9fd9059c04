use super::*;

#[test]
fn output_is_appended_to_the_log_with_a_header() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    std::fs::write(&log, "earlier\n").unwrap();
    let step = Step::new(Path::new("/bin/sh"), tmp.path()).args([
        "-c",
        "echo out; echo 'a.c:1:2: error: boom' >&2; echo '  1 | x'; exit 3",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let Ended::Exited {
        status,
        first_errors,
    } = step.run(&log, deadline).unwrap()
    else {
        panic!("timed out")
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(first_errors, ["a.c:1:2: error: boom", "  1 | x"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("earlier\n$ /bin/sh -c echo out;"),
        "{text}"
    );
    assert!(
        text.ends_with("out\na.c:1:2: error: boom\n  1 | x\n"),
        "{text}"
    );
}

#[test]
fn a_step_past_its_deadline_is_killed_with_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    // The grandchild holds the output pipe: only killing the group ends the read.
    let step = Step::new(Path::new("/bin/sh"), tmp.path()).args(["-c", "sleep 30 & sleep 30"]);
    let start = Instant::now();
    let ended = step.run(&log, start + Duration::from_millis(300)).unwrap();
    assert!(matches!(ended, Ended::TimedOut));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_program_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let step = Step::new(&tmp.path().join("nope"), tmp.path());
    let err = step.run(
        &tmp.path().join("log"),
        Instant::now() + Duration::from_secs(5),
    );
    assert!(err.is_err());
}
