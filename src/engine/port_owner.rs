//! Who listens on a TCP port, from `/proc/net/tcp{,6}` and each process's open sockets.
//! A server that answers on the engine's port with forge's served name is only the engine
//! when the engine owns the port: a squatter that was listening before the engine started
//! (and read the name from the engine's command line) is a foreign server, not a
//! measurement. Only a listener positively held by an older process outside the engine's
//! process group counts as a squatter, so a container launcher (whose server runs in
//! another process tree, started after the launch) is never mistaken for one.

use std::collections::BTreeSet;

/// `LISTEN` in the `st` column of `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// Socket inodes listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> BTreeSet<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| listening_inode(l, port))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The inode of one `/proc/net/tcp` line, when it is a listener on `port`.
fn listening_inode(line: &str, port: u16) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
    (local_port == port && *f.get(3)? == TCP_LISTEN).then_some(())?;
    f.get(9)?.parse().ok().filter(|i| *i != 0)
}

/// Pids (of those this user may inspect) holding one of `inodes` open.
fn holders(inodes: &BTreeSet<u64>) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| holds_any(*pid, inodes))
        .collect()
}

fn holds_any(pid: i32, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| inodes.contains(&n))
        })
    })
}

/// A process listening on `port` that is not in the engine's process group `pgid` and was
/// started before its leader: the port was taken before the engine could bind it.
pub fn squatter(pgid: i32, port: u16) -> Option<i32> {
    let ours = super::process::group_members(pgid);
    let leader_start = super::process::start_ticks(pgid)?;
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    holders(&inodes).into_iter().find(|pid| {
        !ours.contains(pid) && super::process::start_ticks(*pid).is_some_and(|t| t < leader_start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_net_tcp_lines() {
        let l = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inode(l, 8080), Some(424242));
        assert_eq!(listening_inode(l, 8081), None);
        let established = l.replace(" 0A ", " 01 ");
        assert_eq!(listening_inode(&established, 8080), None);
        assert_eq!(listening_inode("garbage", 8080), None);
        assert_eq!(listening_inode("1: é:ZZ x 0A", 8080), None);
    }

    #[test]
    fn a_listener_in_this_process_is_found_and_is_not_a_squatter_of_its_own_group() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id() as i32;
        assert!(holders(&listening_inodes(port)).contains(&me));
        // Our own group: never a squatter of itself.
        let pgid = nix::unistd::getpgrp().as_raw();
        assert_eq!(squatter(pgid, port), None);
    }
}
