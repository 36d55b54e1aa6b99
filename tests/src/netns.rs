//! Network namespaces and veth pairs for tests that need hosts the test process cannot reach
//! directly (ProxyJump chains).
//!
//! [`Netns`] is a named namespace (`ip netns add ocr-test-<pid>-<n>`) with `lo` up and IPv4
//! forwarding off; the last clone to be dropped runs `ip netns del`. [`Veth`] is a veth pair
//! between two namespaces ([`End::Root`] is the test's own), with a private `/30` at each end
//! (`10.A.B.1` on the `a` end, `10.A.B.2` on the `b` end); dropping it deletes the pair. Both
//! hold clones of their namespaces, so drop order does not matter, and both clean up from
//! `Drop`, i.e. also when the test panics.
//!
//! Only what a value created is ever deleted or changed: names carry the pid and a per-process
//! counter, and the `/30` subnets are picked per test (from the pid and the counter) out of
//! `10.160.0.0`–`10.223.255.255`, skipping any subnet that overlaps an address or route that
//! already exists in the test's namespace.
//!
//! Processes started in a namespace ([`Netns::command`], or an [`Sshd`](crate::sshd::Sshd)
//! with [`SshdBuilder::netns`](crate::sshd::SshdBuilder::netns)) share the filesystem and the
//! PID space with the test; only the network differs. [`Netns::run`] runs a closure on a
//! thread that has moved into the namespace (for a `TcpStream` from inside it).
//!
//! # Skipping
//!
//! Namespaces need root and iproute2. [`Netns::new`] returns `None` (after printing `SKIP: …`)
//! when either is missing or `ip netns add` fails, unless `OPENCODE_REMOTE_REQUIRE_SSHD=1` or
//! `CI` is set, in which case it panics — the same rule as the sshd harness. Use
//! [`require_netns!`](crate::require_netns).

use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

/// Where `ip netns add` puts its namespace handles.
const NETNS_RUN_DIR: &str = "/run/netns";

/// A `PATH` for `ip` when the environment has none.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Second octets the subnets come from: `10.160.0.0`–`10.223.255.255`.
const FIRST_OCTET2: u32 = 160;
const OCTET2_COUNT: u32 = 64;
/// Number of `/30` subnets available (one per third octet: `10.A.B.0/30`).
const SUBNETS: u32 = OCTET2_COUNT * 256;

/// Names and subnets made by this process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Create a [`Netns`] or return from the current test when namespaces are not available.
#[macro_export]
macro_rules! require_netns {
    () => {
        match $crate::netns::Netns::new() {
            ::std::option::Option::Some(netns) => netns,
            ::std::option::Option::None => return,
        }
    };
}

/// A network namespace created by this test. Cheap to clone; deleted when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Netns {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Netns").field(&self.inner.name).finish()
    }
}

impl Netns {
    /// Create a namespace with `lo` up and IPv4 forwarding off. `None` (after printing
    /// `SKIP: …`) when namespaces cannot be used and are not required; see the module docs.
    pub fn new() -> Option<Netns> {
        if let Err(reason) = check_prerequisites() {
            return skip_or_panic(&reason);
        }
        let name = format!(
            "ocr-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = ip().args(["netns", "add", &name]).output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return skip_or_panic(&format!(
                    "`ip netns add {name}` failed: {}",
                    lossy(&out.stderr).trim()
                ));
            }
            Err(e) => return skip_or_panic(&format!("cannot run ip: {e}")),
        }
        // From here on Drop deletes it.
        let netns = Netns {
            inner: Arc::new(Inner { name }),
        };
        netns.ip_ok(&["link", "set", "lo", "up"]);
        // New namespaces copy the root namespace's IPv4 settings: make sure this one routes
        // nothing between its links, so a host behind it is reachable only through SSH.
        let status = netns
            .command("sh")
            .args(["-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
            .stdin(Stdio::null())
            .status()
            .expect("run sh in the namespace");
        assert!(status.success(), "cannot turn off ip_forward in {netns:?}");
        Some(netns)
    }

    /// `ocr-test-<pid>-<n>`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(self.name())
    }

    /// `ip netns exec <name> <program>`: a command that runs inside the namespace (iproute2
    /// `exec`s the program, so the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = ip();
        cmd.args(["netns", "exec", self.name()]).arg(program);
        cmd
    }

    /// `ip -n <name> <args>`, panicking on failure.
    pub fn ip_ok(&self, args: &[&str]) {
        let mut cmd = ip();
        cmd.args(["-n", self.name()]).args(args);
        run_ok(cmd);
    }

    /// Run `f` on a new thread that has moved into this namespace (only that thread's network
    /// namespace changes) and return its result. Panics in `f` propagate.
    pub fn run<T, F>(&self, f: F) -> T
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let path = self.path();
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    let file = std::fs::File::open(&path)
                        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                    rustix::thread::move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&file),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A TCP connection to `addr` made from inside this namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        self.run(|| TcpStream::connect_timeout(&addr, timeout))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        match ip().args(["netns", "del", &self.name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: ip netns del {} failed: {}",
                self.name,
                lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: ip netns del {}: {e}", self.name),
        }
    }
}

/// One end of a [`Veth`].
#[derive(Clone, Copy, Debug)]
pub enum End<'a> {
    /// The namespace the tests run in.
    Root,
    /// A namespace the test created.
    Ns(&'a Netns),
}

impl End<'_> {
    fn owned(self) -> Option<Netns> {
        match self {
            End::Root => None,
            End::Ns(ns) => Some(ns.clone()),
        }
    }
}

/// A veth pair with a `/30`: `a_addr()` (`10.A.B.1`) on the `a` end, `b_addr()`
/// (`10.A.B.2`) on the `b` end. Deleted on drop.
#[derive(Debug)]
pub struct Veth {
    a_name: String,
    b_name: String,
    a_ns: Option<Netns>,
    b_ns: Option<Netns>,
    network: Ipv4Addr,
}

impl Veth {
    /// Create a pair between `a` and `b` (different namespaces), address both ends and bring
    /// them up. Panics on failure (use [`Netns::new`] first for the skip rule).
    pub fn new(a: End<'_>, b: End<'_>) -> Veth {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes: "ocr" + pid (hex, ≤ 6) + "v" + n (hex) + a/b.
        let base = format!("ocr{:x}v{:x}", std::process::id(), n);
        let a_name = format!("{base}a");
        let b_name = format!("{base}b");
        assert!(b_name.len() <= 15, "interface name {b_name} is too long");
        let a_ns = a.owned();
        let b_ns = b.owned();
        assert!(
            !matches!((&a_ns, &b_ns), (None, None)),
            "a veth needs at least one created namespace"
        );
        let network = pick_subnet(n, a_ns.as_ref(), b_ns.as_ref());

        // Create both ends in the root namespace, then move them. From here on Drop cleans up.
        run_ok({
            let mut cmd = ip();
            cmd.args([
                "link", "add", &a_name, "type", "veth", "peer", "name", &b_name,
            ]);
            cmd
        });
        let veth = Veth {
            a_name,
            b_name,
            a_ns,
            b_ns,
            network,
        };
        for (name, ns, addr) in [
            (&veth.a_name, &veth.a_ns, veth.a_addr()),
            (&veth.b_name, &veth.b_ns, veth.b_addr()),
        ] {
            if let Some(ns) = ns {
                run_ok({
                    let mut cmd = ip();
                    cmd.args(["link", "set", name, "netns", ns.name()]);
                    cmd
                });
            }
            let cidr = format!("{addr}/30");
            ip_in(ns.as_ref(), &["addr", "add", &cidr, "dev", name]);
            ip_in(ns.as_ref(), &["link", "set", name, "up"]);
        }
        veth
    }

    /// The `a` end's interface name.
    pub fn a_name(&self) -> &str {
        &self.a_name
    }

    /// The `b` end's interface name.
    pub fn b_name(&self) -> &str {
        &self.b_name
    }

    /// `10.A.B.1`, on the `a` end.
    pub fn a_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// `10.A.B.2`, on the `b` end.
    pub fn b_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2)
    }

    /// `10.A.B.0/30`.
    pub fn subnet(&self) -> String {
        format!("{}/30", self.network)
    }

    /// In the `a` end's namespace, route `cidr` to the `b` end (`ip route add <cidr> via
    /// <b_addr> dev <a_name>`). The route goes away with the pair.
    ///
    /// Used to send traffic for a subnet behind `b`'s namespace into it rather than out of the
    /// machine through a default route, e.g. to show that a namespace that does not forward
    /// really is a dead end.
    pub fn route_via_b(&self, cidr: &str) {
        let via = self.b_addr().to_string();
        ip_in(
            self.a_ns.as_ref(),
            &["route", "add", cidr, "via", &via, "dev", &self.a_name],
        );
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end deletes the pair. Prefer the end in the root namespace (it must not
        // linger if the other namespace is kept alive by a process).
        let (name, ns) = if self.b_ns.is_none() {
            (&self.b_name, &self.b_ns)
        } else {
            (&self.a_name, &self.a_ns)
        };
        let mut cmd = ip();
        if let Some(ns) = ns {
            cmd.args(["-n", ns.name()]);
        }
        cmd.args(["link", "del", name]);
        match cmd.output() {
            Ok(out) if out.status.success() => {}
            // Already gone with its namespace.
            Ok(out) if lossy(&out.stderr).contains("Cannot find device") => {}
            Ok(out) => eprintln!(
                "warning: ip link del {name} failed: {}",
                lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: ip link del {name}: {e}"),
        }
    }
}

/// A `10.A.B.0/30` that overlaps no address or route in the namespaces involved. Starts from
/// the pid and counter so that concurrent test processes pick different subnets.
fn pick_subnet(n: u32, a: Option<&Netns>, b: Option<&Netns>) -> Ipv4Addr {
    let mut taken = Vec::new();
    for ns in [a, b] {
        taken.extend(used_prefixes(ns));
    }
    let start = std::process::id().wrapping_mul(2_654_435_761) % SUBNETS;
    for i in 0..SUBNETS {
        let index = (start + n.wrapping_mul(97) + i) % SUBNETS;
        let network = Ipv4Addr::new(
            10,
            u8::try_from(FIRST_OCTET2 + index / 256).expect("octet"),
            u8::try_from(index % 256).expect("octet"),
            0,
        );
        let candidate = (u32::from(network), 30);
        if !taken.iter().any(|&prefix| overlaps(prefix, candidate)) {
            return network;
        }
    }
    panic!("no free 10.x /30 subnet for a veth pair");
}

/// Every IPv4 address and prefix in the routes and addresses of a namespace (the root one for
/// `None`).
fn used_prefixes(ns: Option<&Netns>) -> Vec<(u32, u8)> {
    let mut prefixes = Vec::new();
    for args in [
        &["-4", "-o", "route", "show", "table", "all"][..],
        &["-4", "-o", "addr", "show"][..],
    ] {
        let mut cmd = ip();
        if let Some(ns) = ns {
            cmd.args(["-n", ns.name()]);
        }
        cmd.args(args);
        let out = run_ok(cmd);
        for word in lossy(&out.stdout).split_whitespace() {
            if let Some(prefix) = parse_prefix(word) {
                prefixes.push(prefix);
            }
        }
    }
    prefixes
}

fn parse_prefix(word: &str) -> Option<(u32, u8)> {
    let (addr, len) = match word.split_once('/') {
        Some((addr, len)) => (addr, len.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (word, 32),
    };
    let addr: Ipv4Addr = addr.parse().ok()?;
    Some((u32::from(addr), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn overlaps((a, a_len): (u32, u8), (b, b_len): (u32, u8)) -> bool {
    let shorter = mask(a_len.min(b_len));
    // `default` routes are words, not prefixes, so 0.0.0.0/0 never appears here.
    a & shorter == b & shorter
}

fn ip_in(ns: Option<&Netns>, args: &[&str]) {
    match ns {
        Some(ns) => ns.ip_ok(args),
        None => {
            let mut cmd = ip();
            cmd.args(args);
            run_ok(cmd);
        }
    }
}

fn ip() -> Command {
    let mut cmd = Command::new(find_ip().unwrap_or_else(|| PathBuf::from("ip")));
    cmd.stdin(Stdio::null());
    cmd
}

fn run_ok(mut cmd: Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        lossy(&out.stderr).trim()
    );
    out
}

fn find_ip() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| SYSTEM_PATH.into());
    std::env::split_paths(&path)
        .chain(std::env::split_paths(SYSTEM_PATH))
        .map(|dir| dir.join("ip"))
        .find(|p| p.is_file())
}

/// Why namespaces cannot be used here, if they cannot.
fn check_prerequisites() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("network namespaces need root".to_owned());
    }
    if find_ip().is_none() {
        return Err("ip not found (apt-get install iproute2)".to_owned());
    }
    Ok(())
}

fn required() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    std::env::var_os("OPENCODE_REMOTE_REQUIRE_SSHD").is_some_and(|v| v == "1") || set("CI")
}

fn skip_or_panic<T>(reason: &str) -> Option<T> {
    if required() {
        panic!(
            "network namespaces are required ({reason}; OPENCODE_REMOTE_REQUIRE_SSHD=1 or CI \
             is set): run the tests as root with iproute2 installed"
        );
    }
    eprintln!("SKIP: {reason}");
    None
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_overlaps() {
        assert_eq!(parse_prefix("10.1.2.0/30"), Some((0x0a01_0200, 30)));
        assert_eq!(parse_prefix("192.0.2.1"), Some((0xc000_0201, 32)));
        assert_eq!(parse_prefix("default"), None);
        assert_eq!(parse_prefix("10.1.2.0/33"), None);
        let net = (0x0a01_0200, 30);
        assert!(overlaps(net, (0x0a01_0202, 32)));
        assert!(overlaps(net, (0x0a00_0000, 8)));
        assert!(!overlaps(net, (0x0a01_0204, 30)));
        assert!(!overlaps(net, (0xc000_0200, 24)));
    }

    #[test]
    fn namespaces_and_veths_are_isolated_and_cleaned_up() {
        let Some(n1) = Netns::new() else { return };
        let n2 = Netns::new().expect("a second namespace");
        assert_ne!(n1.name(), n2.name());
        assert!(n1.path().exists());
        let root_n1 = Veth::new(End::Root, End::Ns(&n1));
        let n1_n2 = Veth::new(End::Ns(&n1), End::Ns(&n2));
        assert_ne!(root_n1.subnet(), n1_n2.subnet());
        root_n1.route_via_b(&n1_n2.subnet());

        // A listener in n2 is reachable from n1, not from the root namespace (n1 does not
        // forward), and the root namespace reaches n1.
        let listen = SocketAddr::from((n1_n2.b_addr(), 7));
        let listener = n2.run(|| std::net::TcpListener::bind(listen).expect("bind in n2"));
        n1.connect(listen, Duration::from_secs(2))
            .expect("n1 reaches n2");
        let direct = TcpStream::connect_timeout(&listen, Duration::from_secs(2));
        assert!(direct.is_err(), "the root namespace reached n2: {direct:?}");
        let in_n1 = SocketAddr::from((root_n1.b_addr(), 7));
        let listener1 = n1.run(|| std::net::TcpListener::bind(in_n1).expect("bind in n1"));
        TcpStream::connect_timeout(&in_n1, Duration::from_secs(2)).expect("root reaches n1");
        drop((listener, listener1));

        let names = [n1.name().to_owned(), n2.name().to_owned()];
        let root_end = root_n1.a_name().to_owned();
        drop((n1_n2, root_n1, n1, n2));
        let out = run_ok({
            let mut cmd = ip();
            cmd.args(["netns", "list"]);
            cmd
        });
        let list = lossy(&out.stdout);
        for name in names {
            assert!(!list.contains(&name), "{name} still exists: {list}");
        }
        let link = ip().args(["link", "show", &root_end]).output().unwrap();
        assert!(!link.status.success(), "{root_end} still exists");
    }
}
