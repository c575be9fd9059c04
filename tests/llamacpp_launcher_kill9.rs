//! What survives a `kill -9` of forge when the engine runs under a launcher that keeps the
//! server as its child (a wrapper script, `docker run`, `srun`): the launcher — forge's
//! direct child, with a parent-death signal — dies with forge; the real llama-server it
//! started does not (the kernel's parent-death signal reaches one generation only) and
//! keeps its port until `forge tune resume` reaps its recorded process group, which it does
//! before anything else. The README states exactly this; this test holds both halves.

mod common;

use std::time::Duration;

use common::llamacpp;
use common::procs::{alive, tagged, wait_until};
use common::sandbox::Sandbox;
use nix::sys::signal::Signal;

/// The llama-servers of this sandbox: `(pid, command line)`.
fn servers(sb: &Sandbox) -> Vec<(i32, String)> {
    tagged(&sb.tag)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("llama-server") && cmd.contains("--port"))
        .filter(|(_, cmd)| !cmd.starts_with("/bin/sh") && !cmd.starts_with("sh "))
        .collect()
}

fn port_of(cmd: &str) -> u16 {
    let mut w = cmd.split(' ');
    w.find(|a| *a == "--port");
    w.next().unwrap().parse().unwrap()
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn a_launched_server_outlives_kill_9_until_resume_reaps_it() {
    let Some(p) = llamacpp::peers("a_launched_server_outlives_kill_9_until_resume_reaps_it") else {
        return;
    };
    let sb = Sandbox::new();
    // A launcher that keeps the server as its child instead of exec'ing it.
    let launcher = sb.path().join("launch.sh");
    std::fs::write(&launcher, "#!/bin/sh\n\"$@\" &\nwait $!\n").unwrap();
    std::fs::set_permissions(
        &launcher,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let engine_cmd = format!("{} {}", launcher.display(), p.server.display());
    let mut tune = common::llamacpp::tune_args(&p, &sb.store());
    tune.extend(["--engine-cmd", &engine_cmd, "--max-experiments", "2"].map(str::to_string));
    let tune: Vec<&str> = tune.iter().map(String::as_str).collect();
    let forge = sb.start(&tune);
    let mut server = None;
    assert!(
        wait_until(Duration::from_secs(120), || {
            server = servers(&sb).into_iter().next();
            server
                .as_ref()
                .is_some_and(|(_, cmd)| listening(port_of(cmd)))
        }),
        "no listening llama-server under the launcher:\n{}",
        forge.stderr()
    );
    let (pid, cmd) = server.unwrap();
    let port = port_of(&cmd);

    forge.signal(Signal::SIGKILL);
    // The launcher goes with forge; the server it started survives and keeps its port.
    assert!(
        wait_until(Duration::from_secs(5), || !tagged(&sb.tag)
            .iter()
            .any(|(_, c)| c.contains("launch.sh"))),
        "the launcher outlived forge: {:?}",
        tagged(&sb.tag)
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        alive(pid),
        "documented: the launched server survives kill -9 of forge"
    );
    assert!(listening(port));

    // `forge tune resume` reaps it first thing.
    let store = sb.store().display().to_string();
    let mut resume = sb.start(&["tune", "resume", "--run-dir", &store]);
    assert!(
        wait_until(Duration::from_secs(10), || !alive(pid)),
        "resume did not reap the launched server {pid}:\n{}",
        resume.stderr()
    );
    resume.signal(Signal::SIGTERM);
    resume.wait(Duration::from_secs(60));
    sb.assert_nothing_survives();
}
