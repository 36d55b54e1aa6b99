//! ProxyJump against real sshds: a chain of two jump hosts to a host that only the second one
//! can reach, and a single jump.
//!
//! Chain topology (all addresses are the test's own; see `integration_tests::netns`):
//!
//! ```text
//!  root namespace: the test, opencode-remote (HOME = target's local home)
//!    jump1 sshd   127.0.0.1:<free port>
//!    veth 10.A.B.1 ─────── 10.A.B.2  namespace N1 (no forwarding)
//!                                    jump2 sshd 10.A.B.2:22
//!                                    veth 10.C.D.1 ─────── 10.C.D.2  namespace N2
//!                                                                    target sshd 10.C.D.2:22
//! ```
//!
//! The root namespace routes 10.C.D.0/30 into N1 (so no packet leaves the machine), and N1
//! does not forward: a direct connection to the target fails, only N1 reaches it. Each sshd
//! has its own host key; the laptop side is the target's local home, whose known_hosts holds
//! all three keys (`[127.0.0.1]:PORT`, `10.A.B.2`, `10.C.D.2`) and whose user key every
//! sshd authorizes.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::bins;
use integration_tests::bridge::BridgeProcess;
use integration_tests::http::Client;
use integration_tests::netns::{End, Netns, Veth};
use integration_tests::sshd::Sshd;

const STUB: &str = ".opencode-remote/bin/opencode-remote-stub";

fn run_ok(command: &mut Command) -> (String, String) {
    let started = Instant::now();
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed: {command:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    eprintln!("{stderr}[took {:?}]", started.elapsed());
    (stdout, stderr)
}

fn run_err(command: &mut Command) -> String {
    let started = Instant::now();
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {command:?}\nstderr: {stderr}"
    );
    eprintln!("{stderr}[failed after {:?}]", started.elapsed());
    stderr
}

fn stub_installed(sshd: &Sshd) -> bool {
    sshd.remote_home().join(STUB).exists()
}

/// sshd (LogLevel DEBUG1) logs every `direct-tcpip` channel a client opens:
/// `server_request_direct_tcpip: originator 127.0.0.1 port 0, target 10.1.2.2 port 22`.
fn forwarded_to(jump: &Sshd, to: &Sshd) -> bool {
    let target = format!(", target {} port {}", to.host(), to.port());
    jump.log()
        .lines()
        .any(|line| line.contains("direct_tcpip: originator ") && line.ends_with(&target))
}

fn bare(sshd: &Sshd) -> String {
    format!("{}@{}:{}", sshd.user(), sshd.host(), sshd.port())
}

fn wait_log(sshd: &Sshd, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if sshd.log().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Checks a `health` JSON from the target.
fn assert_healthy_target(stdout: &str, target: &Sshd) {
    let health: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(
        health["stub"]["directory"],
        target
            .remote_home()
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap(),
        "{health}"
    );
}

/// Writes a bare plugin options file with one host, `lab`/`inner`, reached through
/// `proxy_jump` (directly, with a 3 s connect timeout, when empty).
fn options_file(target: &Sshd, proxy_jump: &str) -> PathBuf {
    let path = target.dir().join("options.json");
    let mut options = serde_json::json!({
        "providers": {"lab": {"hosts": [{
            "name": "inner",
            "ssh": {
                "host": target.host(),
                "port": target.port(),
                "user": target.user(),
            },
        }]}},
    });
    if proxy_jump.is_empty() {
        options["tunnel"] = serde_json::json!({"connectTimeout": 3});
    } else {
        options["providers"]["lab"]["hosts"][0]["ssh"]["proxyJump"] = proxy_jump.into();
    }
    std::fs::write(&path, options.to_string()).unwrap();
    path
}

/// `--config <options_file> --provider lab --host inner`.
fn inner(options: &std::path::Path) -> [&str; 6] {
    [
        "--config",
        options.to_str().unwrap(),
        "--provider",
        "lab",
        "--host",
        "inner",
    ]
}

/// The chain topology of the module docs. Fields drop in order: sshds first, then the links,
/// then the namespaces (each also keeps what it needs alive).
struct Chain {
    target: Sshd,
    jump2: Sshd,
    jump1: Sshd,
    root_n1: Veth,
    n1_n2: Veth,
    n1: Netns,
    _n2: Netns,
}

impl Chain {
    /// `None` when sshd or namespaces are unavailable and not required (skip).
    fn start() -> Option<Chain> {
        let started = Instant::now();
        let n1 = Netns::new()?;
        let n2 = Netns::new()?;
        let root_n1 = Veth::new(End::Root, End::Ns(&n1));
        let n1_n2 = Veth::new(End::Ns(&n1), End::Ns(&n2));
        root_n1.route_via_b(&n1_n2.subnet());
        let jump1 = Sshd::builder().start()?;
        let jump2 = Sshd::builder()
            .netns(&n1)
            .listen(SocketAddr::from((root_n1.b_addr(), 22)))
            .start()?;
        let target = Sshd::builder()
            .netns(&n2)
            .listen(SocketAddr::from((n1_n2.b_addr(), 22)))
            .start()?;
        for jump in [&jump1, &jump2] {
            jump.authorize_user_key_of(&target);
            target.add_known_host(jump);
        }
        eprintln!(
            "chain: jump1 {} → jump2 {} ({}) → target {} ({}); set up in {:?}",
            jump1.addr(),
            jump2.addr(),
            n1.name(),
            target.addr(),
            n2.name(),
            started.elapsed()
        );
        Some(Chain {
            target,
            jump2,
            jump1,
            root_n1,
            n1_n2,
            n1,
            _n2: n2,
        })
    }

    /// `opencode-remote` on the laptop side (the target's local home).
    fn local(&self) -> Command {
        bins::local(&self.target)
    }

    /// `~/.ssh/config` with Host entries for all three and `ProxyJump jump1,jump2` for the
    /// target.
    fn write_ssh_config(&self) {
        let config = format!(
            "# Written by tests/jump.rs\n\
             Host jump1\n  HostName {}\n  Port {}\n  User {}\n\
             Host jump2\n  HostName {}\n  User {}\n\
             Host target\n  HostName {}\n  User {}\n  ProxyJump jump1,jump2\n\
             Host target-via-jump2\n  HostName {}\n  User {}\n  ProxyJump jump2\n",
            self.jump1.host(),
            self.jump1.port(),
            self.jump1.user(),
            self.jump2.host(),
            self.jump2.user(),
            self.target.host(),
            self.target.user(),
            self.target.host(),
            self.target.user(),
        );
        std::fs::write(self.target.local_home().join(".ssh/config"), config).unwrap();
    }

    fn assert_went_through_both_jumps(&self) {
        assert!(
            forwarded_to(&self.jump1, &self.jump2),
            "jump1 did not forward to jump2:\n{}",
            self.jump1.log()
        );
        assert!(
            forwarded_to(&self.jump2, &self.target),
            "jump2 did not forward to the target:\n{}",
            self.jump2.log()
        );
        // The target saw the connection come from jump2's side of the N1↔N2 link.
        let from = format!("Connection from {} port", self.n1_n2.a_addr());
        assert!(self.target.log().contains(&from), "{}", self.target.log());
        assert!(!stub_installed(&self.jump1) && !stub_installed(&self.jump2));
    }
}

#[test]
fn the_target_behind_the_chain_should_be_unreachable_directly() {
    let Some(chain) = Chain::start() else { return };
    let target = chain.target.addr();
    // N1 drops what it is not the destination of (forwarding is off, so without an ICMP
    // error): connecting times out.
    let started = Instant::now();
    let direct = TcpStream::connect_timeout(&target, Duration::from_secs(2));
    assert!(direct.is_err(), "the root namespace reached {target}");
    eprintln!("direct connect: {direct:?} after {:?}", started.elapsed());
    // Nor can the binary reach it without the jumps.
    let options = options_file(&chain.target, "");
    let stderr = run_err(chain.local().arg("health").args(inner(&options)));
    assert!(
        stderr.contains(&format!("connecting to {target} timed out after 3 s")),
        "{stderr}"
    );
    // But N1 (where jump2 runs) reaches it, and the root namespace reaches jump2.
    chain
        .n1
        .connect(target, Duration::from_secs(3))
        .expect("N1 reaches the target");
    TcpStream::connect_timeout(&chain.jump2.addr(), Duration::from_secs(3))
        .expect("the root namespace reaches jump2");
    assert!(!stub_installed(&chain.target));
}

#[test]
fn health_should_go_through_a_two_jump_chain_from_the_options() {
    let Some(chain) = Chain::start() else { return };
    let spec = format!("{},{}", bare(&chain.jump1), bare(&chain.jump2));
    assert_eq!(
        spec,
        format!(
            "root@127.0.0.1:{},root@{}:22",
            chain.jump1.port(),
            chain.root_n1.b_addr()
        )
    );
    let options = options_file(&chain.target, &spec);
    let (stdout, _) = run_ok(chain.local().arg("health").args(inner(&options)));
    assert_healthy_target(&stdout, &chain.target);
    assert!(stub_installed(&chain.target));
    chain.assert_went_through_both_jumps();

    // `resolve` shows the route.
    let (stdout, _) = run_ok(chain.local().arg("resolve").args(inner(&options)));
    let resolved: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        resolved["ssh"]["jumps"],
        serde_json::json!([bare(&chain.jump1), bare(&chain.jump2)])
    );
}

#[test]
fn health_and_the_bridge_should_go_through_proxy_jump_from_ssh_config() {
    let Some(chain) = Chain::start() else { return };
    chain.write_ssh_config();
    let (stdout, _) = run_ok(chain.local().args(["health", "target"]));
    assert_healthy_target(&stdout, &chain.target);
    chain.assert_went_through_both_jumps();

    // A single jump from the config reaches the target too (jump2 is directly reachable).
    run_ok(chain.local().args(["health", "target-via-jump2"]));

    let mut command = chain.local();
    command.args(["bridge", "target"]);
    let bridge = BridgeProcess::spawn(command).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        bridge.info["host"]["fingerprint"],
        chain.target.host_key_fingerprint()
    );
    assert_eq!(bridge.info["host"]["address"], chain.target.host());
    eprintln!("bridge connectMs {}", bridge.info["connectMs"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let started = Instant::now();
        let (status, body) = client
            .get(&format!("{}/global/health", bridge.prefix()))
            .await;
        eprintln!("request through the chain: {:?}", started.elapsed());
        assert_eq!(status, 200, "{body:?}");
        let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(health["healthy"], true, "{health}");
    });
    drop(bridge);
    assert!(!stub_installed(&chain.jump1) && !stub_installed(&chain.jump2));
}

#[test]
fn unknown_or_changed_jump_host_keys_should_be_refused_naming_the_hop() {
    let Some(chain) = Chain::start() else { return };
    chain.write_ssh_config();
    let known_hosts = chain.target.known_hosts_path();
    let line = |sshd: &Sshd| sshd.host_key_line();
    let write = |lines: &[String]| std::fs::write(&known_hosts, lines.join("\n") + "\n").unwrap();

    // The second hop's key is unknown: jump1 is verified and forwards, jump2 is refused.
    write(&[line(&chain.target), line(&chain.jump1)]);
    let stderr = run_err(chain.local().args(["health", "target"]));
    assert!(
        stderr.contains(&format!("via jump host {}", bare(&chain.jump2))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("host key for {} is not known", chain.jump2.host())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&chain.jump2.host_key_fingerprint()),
        "{stderr}"
    );
    assert!(forwarded_to(&chain.jump1, &chain.jump2));
    assert!(wait_log(&chain.jump2, "Connection closed by"));
    assert!(
        !chain.jump2.log().contains("Accepted publickey"),
        "{}",
        chain.jump2.log()
    );

    // The first hop's key is unknown: nothing gets past it.
    let jump1_log = chain.jump1.log().len();
    write(&[line(&chain.target), line(&chain.jump2)]);
    let stderr = run_err(chain.local().args(["health", "target"]));
    assert!(
        stderr.contains(&format!("via jump host {}", bare(&chain.jump1))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "host key for [127.0.0.1]:{} is not known",
            chain.jump1.port()
        )),
        "{stderr}"
    );
    assert!(
        !chain.jump1.log()[jump1_log..].contains("Accepted publickey"),
        "{}",
        chain.jump1.log()
    );

    // The second hop's key has changed (jump1's key recorded under jump2's name).
    let jump1_key = chain.jump1.host_public_key();
    write(&[
        line(&chain.target),
        line(&chain.jump1),
        format!("{} {jump1_key}", chain.jump2.known_hosts_name()),
    ]);
    let stderr = run_err(chain.local().args(["health", "target"]));
    assert!(
        stderr.contains(&format!("via jump host {}", bare(&chain.jump2))),
        "{stderr}"
    );
    assert!(stderr.contains("has changed"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", known_hosts.display())),
        "{stderr}"
    );

    // Nothing reached the target, let alone got installed there.
    assert!(!stub_installed(&chain.target));
    let from = format!("Connection from {} port", chain.n1_n2.a_addr());
    assert!(
        !chain.target.log().contains(&from),
        "{}",
        chain.target.log()
    );

    // With every key known the same command works.
    write(&[line(&chain.target), line(&chain.jump1), line(&chain.jump2)]);
    run_ok(chain.local().args(["health", "target"]));
    assert!(stub_installed(&chain.target));
}

#[test]
fn health_should_go_through_a_single_jump() {
    let Some(n1) = Netns::new() else { return };
    let root_n1 = Veth::new(End::Root, End::Ns(&n1));
    let Some(jump1) = Sshd::builder().start() else {
        return;
    };
    let Some(target) = Sshd::builder()
        .netns(&n1)
        .listen(SocketAddr::from((root_n1.b_addr(), 22)))
        .start()
    else {
        return;
    };
    jump1.authorize_user_key_of(&target);
    target.add_known_host(&jump1);
    let options = options_file(&target, &bare(&jump1));
    let (stdout, _) = run_ok(bins::local(&target).arg("health").args(inner(&options)));
    assert_healthy_target(&stdout, &target);
    // The target is reachable from the root namespace too, so the logs show the route: jump1
    // opened the tunnel, the target saw a connection from the root side of the link.
    assert!(forwarded_to(&jump1, &target), "{}", jump1.log());
    assert!(
        target
            .log()
            .contains(&format!("Connection from {} port", root_n1.a_addr()))
    );
    assert!(stub_installed(&target) && !stub_installed(&jump1));
}

#[test]
fn an_unknown_target_key_behind_jumps_should_be_refused_naming_the_target() {
    let Some(chain) = Chain::start() else { return };
    chain.write_ssh_config();
    let known_hosts = chain.target.known_hosts_path();
    std::fs::write(
        &known_hosts,
        format!(
            "{}\n{}\n",
            chain.jump1.host_key_line(),
            chain.jump2.host_key_line()
        ),
    )
    .unwrap();
    let stderr = run_err(chain.local().args(["health", "target"]));
    assert!(!stderr.contains("via jump host"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "host key for {} is not known",
            chain.target.host()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&chain.target.host_key_fingerprint()),
        "{stderr}"
    );
    assert!(forwarded_to(&chain.jump2, &chain.target));
    assert!(!chain.target.log().contains("Accepted publickey"));
    assert!(!stub_installed(&chain.target));
}

/// An OpenSSH client config for the chain's hosts, with the harness's known_hosts and key.
fn openssh_config(chain: &Chain, hosts: &str) -> PathBuf {
    let path = chain.target.dir().join("openssh_config");
    let config = format!(
        "{hosts}\
         Host *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n  BatchMode yes\n  IdentitiesOnly yes\n  IdentityFile {}\n  \
         ControlMaster no\n  ControlPath none\n  ConnectTimeout 10\n  LogLevel ERROR\n",
        chain.target.known_hosts_path().display(),
        chain.target.user_key().display(),
    );
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn a_jump_hosts_own_proxy_jump_should_be_followed_like_openssh() {
    let Some(chain) = Chain::start() else { return };
    // target → jump2 → (jump2's own ProxyJump) jump1.
    let hosts = format!(
        "Host jump1\n  HostName {}\n  Port {}\n  User {}\n\
         Host jump2\n  HostName {}\n  User {}\n  ProxyJump jump1\n\
         Host target\n  HostName {}\n  User {}\n  ProxyJump jump2\n",
        chain.jump1.host(),
        chain.jump1.port(),
        chain.jump1.user(),
        chain.jump2.host(),
        chain.jump2.user(),
        chain.target.host(),
        chain.target.user(),
    );
    std::fs::write(chain.target.local_home().join(".ssh/config"), &hosts).unwrap();

    // The reference: OpenSSH goes through jump1, then jump2.
    let config = openssh_config(&chain, &hosts);
    let (stdout, _) = run_ok(
        Command::new("ssh")
            .env("HOME", chain.target.local_home())
            .env_remove("SSH_AUTH_SOCK")
            .arg("-F")
            .arg(&config)
            .args(["target", "echo via-openssh"]),
    );
    assert_eq!(stdout, "via-openssh\n");
    assert!(
        forwarded_to(&chain.jump1, &chain.jump2),
        "OpenSSH skipped jump1"
    );
    let jump1_log = chain.jump1.log().len();

    let (stdout, _) = run_ok(chain.local().args(["resolve", "target"]));
    let resolved: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        resolved["ssh"]["jumps"],
        serde_json::json!([bare(&chain.jump1), bare(&chain.jump2)])
    );
    run_ok(chain.local().args(["health", "target"]));
    assert!(
        chain.jump1.log()[jump1_log..].contains("direct_tcpip"),
        "opencode-remote skipped jump1"
    );
}

#[test]
fn host_key_hints_behind_jumps_should_name_the_route() {
    let Some(chain) = Chain::start() else { return };
    chain.write_ssh_config();
    std::fs::write(
        chain.target.known_hosts_path(),
        format!(
            "{}\n{}\n",
            chain.jump1.host_key_line(),
            chain.jump2.host_key_line()
        ),
    )
    .unwrap();
    let stderr = run_err(chain.local().args(["health", "target"]));
    let route = format!("-J {},{}", bare(&chain.jump1), bare(&chain.jump2));
    let hint = format!(
        "`ssh {route} {}@{}`",
        chain.target.user(),
        chain.target.host()
    );
    assert!(stderr.contains(&hint), "no {hint} in {stderr}");
    // setup-host.sh gets `<host> <user> [port]`, with the ssh config alias so that its
    // ProxyJump applies again.
    let setup = format!(
        "`scripts/setup-host.sh --accept-new target {} {}`",
        chain.target.user(),
        chain.target.port()
    );
    assert!(stderr.contains(&setup), "no {setup} in {stderr}");

    // Both hints work as printed (OpenSSH with this harness's known_hosts and key).
    let config = openssh_config(&chain, "");
    let status = Command::new("ssh")
        .env("HOME", chain.target.local_home())
        .arg("-F")
        .arg(&config)
        .args(route.split(' '))
        .args(["-o", "StrictHostKeyChecking=accept-new"])
        .arg(format!("{}@{}", chain.target.user(), chain.target.host()))
        .arg("true")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        chain.target.known_hosts_path(),
        format!(
            "{}\n{}\n",
            chain.jump1.host_key_line(),
            chain.jump2.host_key_line()
        ),
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-host.sh");
    let mut setup_host = Command::new(script);
    setup_host
        .env("HOME", chain.target.local_home())
        .env("OPENCODE_REMOTE_BIN", bins::local_bin())
        .env_remove("SSH_AUTH_SOCK")
        .args(["--accept-new", "target", chain.target.user(), "22"]);
    run_ok(setup_host.stdin(std::process::Stdio::null()));
    run_ok(chain.local().args(["health", "target"]));
}
