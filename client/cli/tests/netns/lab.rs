//! A star network of Linux network namespaces made by the test.
//!
//! ```text
//!   host 0 (eth0 10.77.1.2) ──veth── h0 10.77.1.1 ┐
//!   host 1 (eth0 10.77.2.2) ──veth── h1 10.77.2.1 ├ hub (the relay's sockets)
//!   …                                             ┘
//! ```
//!
//! Every host is a namespace with one veth link to the hub namespace; its
//! default route points at its link's hub end. The hub does not forward
//! (`ip_forward` 0), so hosts cannot reach each other directly: a host's
//! public address is its link's hub end, where the relay listens and passes
//! traffic on to the host's own address (10.77.N.2). Nothing is added to
//! the namespace the test runs in.
//!
//! Names are `cairnt<pid>x<n>-…` (pid and a per-process counter), so tests
//! never share a namespace; [`Lab::new`] first removes the namespaces of
//! test processes that died (killing what still runs in them), and
//! [`Drop`] removes its own. Labs in one process run one at a time.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

const PREFIX: &str = "cairnt";

/// One lab at a time per test process: each runs a devnet, and two would
/// starve each other on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The namespaces of one test.
pub struct Lab {
    base: String,
    hosts: usize,
    _turn: MutexGuard<'static, ()>,
}

/// Why a lab could not be made: not root, or no namespaces here.
#[derive(Debug)]
pub struct Unsupported(pub String);

impl Lab {
    /// A hub and `hosts` hosts, each linked to the hub. `Err` if this
    /// machine does not let the test make namespaces.
    pub fn new(hosts: usize) -> Result<Self, Unsupported> {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        remove_stale();
        let base = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Self {
            base,
            hosts: 0,
            _turn: turn,
        };
        let hub = lab.hub();
        let out = Command::new("ip")
            .args(["netns", "add", &hub])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Unsupported(format!("cannot run `ip` (iproute2): {e}")))?;
        if !out.status.success() {
            return Err(Unsupported(format!(
                "`ip netns add` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut lab = lab;
        run_ok(&["-n", &hub, "link", "set", "lo", "up"]);
        // A new namespace may inherit forwarding from the one it was made
        // from; the hub must not route between hosts.
        exec_ok(
            &hub,
            &["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"],
        );
        for i in 0..hosts {
            let ns = lab.host(i);
            run_ok(&["netns", "add", &ns]);
            lab.hosts = i + 1;
            let link = format!("h{i}");
            run_ok(&[
                "-n", &hub, "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            run_ok(&[
                "-n",
                &hub,
                "addr",
                "add",
                &format!("{}/24", public_ip(i)),
                "dev",
                &link,
            ]);
            run_ok(&["-n", &hub, "link", "set", &link, "up"]);
            run_ok(&["-n", &ns, "link", "set", "lo", "up"]);
            run_ok(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", own_ip(i)),
                "dev",
                "eth0",
            ]);
            lab.heal(i);
        }
        Ok(lab)
    }

    pub fn hub(&self) -> String {
        format!("{}-hub", self.base)
    }

    /// Host `i`'s namespace name.
    pub fn host(&self, i: usize) -> String {
        format!("{}-{i}", self.base)
    }

    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Cuts host `i` off: its link goes down, so what it sends and what is
    /// sent to it is lost (no error comes back to its peers).
    pub fn partition(&self, i: usize) {
        run_ok(&["-n", &self.host(i), "link", "set", "eth0", "down"]);
    }

    /// Brings host `i`'s link (back) up with its default route.
    pub fn heal(&self, i: usize) {
        let ns = self.host(i);
        run_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
        run_ok(&[
            "-n",
            &ns,
            "route",
            "replace",
            "default",
            "via",
            &public_ip(i).to_string(),
        ]);
    }

    /// Limits host `i`'s link to `mbit` Mbit/s each way (tc tbf on both
    /// ends of the veth).
    pub fn limit_rate(&self, i: usize, mbit: u32) {
        let rate = format!("{mbit}mbit");
        for (ns, dev) in [
            (self.host(i), "eth0".to_string()),
            (self.hub(), format!("h{i}")),
        ] {
            exec_ok(
                &ns,
                &[
                    "tc", "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", &rate, "burst",
                    "256kb", "latency", "200ms",
                ],
            );
        }
    }

    /// `ip netns exec <host i> ...` as a command to complete.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(i), program]);
        cmd
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut names: Vec<String> = (0..self.hosts).map(|i| self.host(i)).collect();
        names.push(self.hub());
        for ns in names {
            remove(&ns);
        }
    }
}

/// Host `i`'s public address: its link's hub end, where the relay listens.
pub fn public_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, link_octet(i), 1)
}

/// Host `i`'s own address, on its side of the link.
pub fn own_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, link_octet(i), 2)
}

/// The host whose own address is `ip`, if any.
pub fn host_of(ip: Ipv4Addr) -> Option<usize> {
    let [a, b, c, d] = ip.octets();
    (a == 10 && b == 77 && c >= 1 && d == 2).then(|| usize::from(c) - 1)
}

fn link_octet(i: usize) -> u8 {
    u8::try_from(i + 1).expect("at most 254 hosts")
}

/// Removes namespace `ns` after killing what still runs in it (only test
/// nodes and clients ever run there).
fn remove(ns: &str) {
    let pids = ip(&["netns", "pids", ns]);
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill")
            .args(["-KILL", pid])
            .stderr(Stdio::null())
            .status();
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes the namespaces of test processes that no longer run.
fn remove_stale() {
    let Ok(list) = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
    else {
        return; // no iproute2: `new` says so
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('x').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove(name);
        }
    }
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"))
}

fn run_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn exec_ok(ns: &str, cmd: &[&str]) {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(cmd);
    run_ok(&args);
}
