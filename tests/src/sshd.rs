//! A real OpenSSH `sshd` per test.
//!
//! [`Sshd`] runs `/usr/sbin/sshd -D -E <log> -f <config>` as a child process listening on
//! `127.0.0.1:<random port>`, with throwaway host and user keys in a [`TempDir`]. It
//! provides two isolated home directories:
//!
//! * [`Sshd::local_home`] — the laptop side: give it as `HOME` to the `opencode-remote`
//!   process under test. It holds `.ssh/id_<type>` (+ `.pub`), the authorized user key, and
//!   `.ssh/known_hosts` with the `[127.0.0.1]:PORT` entry of the host key (or a variant, see
//!   [`KnownHosts`]).
//! * [`Sshd::remote_home`] — the `HOME` that sessions on the "host" get.
//!
//! # Remote `HOME` isolation
//!
//! We run as root, and sshd always starts sessions for the account's passwd entry (`/root`).
//! The real `/root` must never be read or written by a test, so the generated config has
//! `SetEnv "HOME=<remote_home>"`. In OpenSSH, admin `SetEnv` values are applied *after* the
//! default environment (`USER`, `HOME`, `PATH`, …) is built, so they override `HOME` for exec,
//! shell and subsystem sessions alike; the self-tests check that `echo $HOME` and `cd ~`
//! both give the temporary directory and that bash reads `$HOME/.bashrc`. bash finds its
//! startup files through `$HOME` (`~/.bashrc`, `~/.profile`), so the real `/root/.bashrc` and
//! `/root/.profile` are never sourced.
//!
//! Two things `SetEnv` cannot change, and how they are handled:
//!
//! * sshd `chdir`s to the passwd home (`/root`) before running the shell. The harness
//!   writes `$remote_home/.bashrc` and `$remote_home/.profile` whose first lines `cd "$HOME"`
//!   once per session (guarded by the exported [`SESSION_MARKER`] variable, so shells that the
//!   session starts later keep their working directory), so commands run through the login
//!   shell start in the isolated home, like a real user's session starts in their home.
//!   (Debian's bash sources `~/.bashrc` for non-interactive `bash -c` commands started by
//!   sshd: it sees `SSH_CLIENT`.) A test that deletes these files gets `/root` as the
//!   initial working directory.
//! * sshd reads `~/.ssh/rc` from the passwd home: the config sets `PermitUserRC no`.
//!
//! `SHLVL`: sshd builds the session environment from scratch (no `SHLVL`, no `AcceptEnv`), so
//! the shell sshd starts has `SHLVL=1`. bash sources `~/.bashrc` for `SSH_CLIENT` only in
//! top-level shells (`SHLVL < 2`), so a nested `bash -c` does not source it again. Beware:
//! bash `exec`s the last command of `bash -c '…'` and lowers `SHLVL` for it, so a bash that
//! is exec'd as (or by) the session command is top-level again and sources `~/.bashrc` (and
//! prints login noise) a second time. Whatever is sourced, it is `$HOME/.bashrc`, i.e. the
//! temporary one, so no `SHLVL` manipulation is needed to keep `/root/.bashrc` out.

//! A `ForceCommand` wrapper (exporting `HOME`, then `exec`ing `$SSH_ORIGINAL_COMMAND`) was
//! rejected: sshd runs the wrapper itself through `bash -c`, which would already have read
//! the startup files of the real `HOME`, and it changes how subsystems and shells behave.
//!
//! Note that only the *first* `SetEnv` line of an sshd_config counts (later ones are silently
//! ignored), so extra `SetEnv` lines from [`SshdBuilder::extra_config`] are merged into the
//! harness's line; prefer [`SshdBuilder::env`].
//!
//! # Skipping
//!
//! [`Sshd::start`] returns `None` (after printing `SKIP: …` to stderr) when `/usr/sbin/sshd`
//! or `ssh-keygen` is missing, unless `OPENCODE_REMOTE_REQUIRE_SSHD=1` or `CI` is set, in which
//! case it panics. Use [`require_sshd!`](crate::require_sshd) in tests.
//!
//! # Logs
//!
//! sshd runs at `LogLevel DEBUG1` with `-E`, writing to a log file in the temporary
//! directory ([`Sshd::log`]). (Not `-e`: sshd's session processes would then write
//! `debug1: …` lines into the exec channel's stderr.) When an [`Sshd`] is dropped while its
//! thread panics (a failing test), the whole log is printed to stderr.
//!
//! Processes that sessions leave behind (for example an orphaned stub) are never killed by
//! the harness: only the listening sshd process it spawned is.
//!
//! # Other addresses and network namespaces
//!
//! [`SshdBuilder::listen`] makes sshd listen on another address (one the test created, e.g. an
//! end of a [`Veth`](crate::netns::Veth)); with [`SshdBuilder::netns`] it runs inside a
//! [`Netns`] (`ip netns exec`), so it can be reachable only from other namespaces, e.g.
//! behind a jump host. Such an sshd sees the same filesystem and PID space; its homes, keys and
//! log live in its temporary directory as usual. known_hosts names follow OpenSSH: `host` for
//! port 22, `[host]:port` otherwise ([`Sshd::known_hosts_name`]). For chains, share one laptop
//! side: [`Sshd::authorize_user_key_of`] and [`Sshd::add_known_host`].

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::netns::Netns;

/// The OpenSSH server binary the harness runs.
pub const SSHD_PATH: &str = "/usr/sbin/sshd";

/// The address harness sshds listen on unless [`SshdBuilder::listen`] says otherwise.
pub const HOST: &str = "127.0.0.1";

/// Exported by the remote home's `.bashrc`/`.profile` once a session's first shell has moved
/// to the isolated `HOME`.
pub const SESSION_MARKER: &str = "OPENCODE_REMOTE_TEST_SESSION";

/// sshd's privilege separation directory on Debian.
const PRIVSEP_DIR: &str = "/run/sshd";

/// How long to wait for sshd to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How many ports to try when the picked port turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// Grace period between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// A `PATH` for the child processes the harness starts with a cleared environment.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Start an [`Sshd`] or return from the current test when OpenSSH is not installed.
///
/// `require_sshd!()` uses [`Sshd::start`]; `require_sshd!(builder)` starts the given
/// [`SshdBuilder`]. (A macro cannot introduce a `sshd` binding visible to the caller, so it
/// is an expression: `let sshd = require_sshd!();`.)
#[macro_export]
macro_rules! require_sshd {
    () => {
        match $crate::sshd::Sshd::start() {
            ::std::option::Option::Some(sshd) => sshd,
            ::std::option::Option::None => return,
        }
    };
    ($builder:expr) => {
        match $crate::sshd::SshdBuilder::start($builder) {
            ::std::option::Option::Some(sshd) => sshd,
            ::std::option::Option::None => return,
        }
    };
}

/// An SSH key algorithm, for host and user keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Ed25519,
    /// ECDSA with NIST P-256.
    Ecdsa,
    /// RSA, 2048 bits (small, to keep key generation fast).
    Rsa,
}

impl KeyType {
    /// The `ssh-keygen -t` name.
    pub fn keygen_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Ecdsa => "ecdsa",
            KeyType::Rsa => "rsa",
        }
    }

    /// The key's type as written in public keys and known_hosts.
    pub fn ssh_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::Ecdsa => "ecdsa-sha2-nistp256",
            KeyType::Rsa => "ssh-rsa",
        }
    }

    /// The default identity file name OpenSSH uses for this type (`id_ed25519`, …).
    pub fn identity_file_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "id_ed25519",
            KeyType::Ecdsa => "id_ecdsa",
            KeyType::Rsa => "id_rsa",
        }
    }

    fn bits(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "256",
            KeyType::Ecdsa => "256",
            KeyType::Rsa => "2048",
        }
    }
}

/// What the laptop-side `~/.ssh/known_hosts` contains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KnownHosts {
    /// One line: `[127.0.0.1]:PORT <host key>` (line 1).
    #[default]
    Correct,
    /// One hashed line (`|1|salt|hmac <host key>`, via `ssh-keygen -H`) (line 1).
    Hashed,
    /// An empty file: the host key is unknown.
    Empty,
    /// A comment (line 1), an entry for another host (line 2), and the entry for
    /// `[127.0.0.1]:PORT` with a *different* key of the host key's type (line 3): the host key
    /// has "changed".
    Wrong,
}

/// Builder for an [`Sshd`] with non-default settings.
#[derive(Clone, Debug)]
pub struct SshdBuilder {
    host_key_type: KeyType,
    extra_host_keys: Vec<KeyType>,
    user_key_type: KeyType,
    user_key_passphrase: Option<String>,
    user_key_only_in_agent: bool,
    known_hosts: KnownHosts,
    login_noise: Option<Vec<u8>>,
    login_noise_stderr: Option<Vec<u8>>,
    extra_config: Vec<String>,
    env: Vec<(String, String)>,
    password_authentication: bool,
    kbd_interactive_authentication: bool,
    client_alive_interval: u32,
    client_alive_count_max: u32,
    listen: Option<SocketAddr>,
    netns: Option<Netns>,
    root: Option<PathBuf>,
}

impl Default for SshdBuilder {
    fn default() -> Self {
        SshdBuilder {
            host_key_type: KeyType::Ed25519,
            extra_host_keys: Vec::new(),
            user_key_type: KeyType::Ed25519,
            user_key_passphrase: None,
            user_key_only_in_agent: false,
            known_hosts: KnownHosts::Correct,
            login_noise: None,
            login_noise_stderr: None,
            extra_config: Vec::new(),
            env: Vec::new(),
            password_authentication: false,
            kbd_interactive_authentication: false,
            client_alive_interval: 0,
            client_alive_count_max: 3,
            listen: None,
            netns: None,
            root: None,
        }
    }
}

impl SshdBuilder {
    /// Every login (exec and shell sessions) prints `text` to stdout before running the
    /// command, from `$remote_home/.bashrc` and `$remote_home/.profile`. The bytes are
    /// written as given (no newline is added).
    pub fn login_noise(mut self, text: impl AsRef<[u8]>) -> Self {
        self.login_noise = Some(text.as_ref().to_vec());
        self
    }

    /// Like [`login_noise`](Self::login_noise), but to stderr.
    pub fn login_noise_stderr(mut self, text: impl AsRef<[u8]>) -> Self {
        self.login_noise_stderr = Some(text.as_ref().to_vec());
        self
    }

    /// Extra sshd_config lines (may be called repeatedly; `text` may hold several lines).
    ///
    /// For most keywords sshd uses the *first* value it reads, so these lines are placed
    /// before the harness's defaults and override them. Lines from the first `Match` on go
    /// to the end of the file. Top-level `SetEnv` lines are merged into the harness's
    /// `SetEnv` line (sshd ignores all but the first).
    pub fn extra_config(mut self, text: impl AsRef<str>) -> Self {
        self.extra_config
            .extend(text.as_ref().lines().map(str::to_owned));
        self
    }

    /// An environment variable for every session (sshd `SetEnv`). `HOME` cannot be changed.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The type of the primary host key (the one in known_hosts). Default: Ed25519.
    pub fn host_key_type(mut self, key_type: KeyType) -> Self {
        self.host_key_type = key_type;
        self
    }

    /// An additional host key the server offers (not written to known_hosts).
    pub fn extra_host_key(mut self, key_type: KeyType) -> Self {
        self.extra_host_keys.push(key_type);
        self
    }

    /// The type of the authorized user key. Default: Ed25519.
    pub fn user_key_type(mut self, key_type: KeyType) -> Self {
        self.user_key_type = key_type;
        self
    }

    /// Encrypt the user key with this passphrase. ([`Sshd::start_agent`] still adds it.)
    pub fn user_key_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.user_key_passphrase = Some(passphrase.into());
        self
    }

    /// Keep the authorized user key out of `local_home/.ssh`: it is only available through
    /// [`Sshd::start_agent`] (its files live in the harness directory, see
    /// [`Sshd::user_key`]).
    pub fn user_key_only_in_agent(mut self) -> Self {
        self.user_key_only_in_agent = true;
        self
    }

    /// What the local known_hosts contains. Default: [`KnownHosts::Correct`].
    pub fn known_hosts(mut self, known_hosts: KnownHosts) -> Self {
        self.known_hosts = known_hosts;
        self
    }

    /// Shorthand for `known_hosts(KnownHosts::Empty)`.
    pub fn no_known_hosts(self) -> Self {
        self.known_hosts(KnownHosts::Empty)
    }

    /// Shorthand for `known_hosts(KnownHosts::Wrong)`.
    pub fn wrong_known_hosts(self) -> Self {
        self.known_hosts(KnownHosts::Wrong)
    }

    /// Shorthand for `known_hosts(KnownHosts::Hashed)`.
    pub fn hashed_known_hosts(self) -> Self {
        self.known_hosts(KnownHosts::Hashed)
    }

    /// `PasswordAuthentication` (default `no`). The harness does not set any password:
    /// with `UsePAM no` sshd checks the account's real password hash.
    pub fn password_authentication(mut self, enabled: bool) -> Self {
        self.password_authentication = enabled;
        self
    }

    /// `KbdInteractiveAuthentication` (default `no`); `yes` also sets `UsePAM yes`, the only
    /// keyboard-interactive back end OpenSSH has on Linux.
    pub fn kbd_interactive_authentication(mut self, enabled: bool) -> Self {
        self.kbd_interactive_authentication = enabled;
        self
    }

    /// `ClientAliveInterval` in seconds (default 0: off).
    pub fn client_alive_interval(mut self, seconds: u32) -> Self {
        self.client_alive_interval = seconds;
        self
    }

    /// `ClientAliveCountMax` (default 3).
    pub fn client_alive_count_max(mut self, count: u32) -> Self {
        self.client_alive_count_max = count;
        self
    }

    /// Listen on `addr` instead of `127.0.0.1:<free port>` (port 0: a free port on that
    /// address). Only use addresses the test created (an end of a
    /// [`Veth`](crate::netns::Veth)). A fixed port is not retried when it is taken.
    pub fn listen(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.listen = Some(addr.into());
        self
    }

    /// Run sshd inside `netns` (`ip netns exec <name> sshd …`); requires
    /// [`listen`](Self::listen) with an address of that namespace. The readiness check (the
    /// SSH banner) is made from inside the namespace, so the address need not be reachable
    /// from the test's own namespace. The [`Sshd`] keeps the namespace alive.
    pub fn netns(mut self, netns: &Netns) -> Self {
        self.netns = Some(netns.clone());
        self
    }

    /// Run the sshd of another root file system (e.g. an arm64 Debian made by debootstrap,
    /// see [`crate::arm64`]) chrooted into it, in a mount namespace of its own where that root
    /// gets `/proc`, `/dev`, an empty `/tmp` and `/run`, and the harness's temporary directory
    /// at the same path as outside. Paths in the config, the homes and the log therefore mean
    /// the same inside and out, and sessions run the root's own shell and tools.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Start sshd. `None` (after printing `SKIP: …`) when OpenSSH is not installed and not
    /// required; panics on any other failure.
    pub fn start(self) -> Option<Sshd> {
        if let Err(reason) = check_prerequisites() {
            if sshd_required() {
                panic!(
                    "sshd is required: apt-get install openssh-server ({reason}; \
                     OPENCODE_REMOTE_REQUIRE_SSHD=1 or CI is set)"
                );
            }
            eprintln!("SKIP: {reason}");
            return None;
        }
        let ip = self
            .listen
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
        let netns = self.netns.clone();
        Some(Sshd::start_with(self, &mut || {
            free_port_on(ip, netns.as_ref())
        }))
    }
}

/// A running OpenSSH server on `127.0.0.1:port()` (or [`SshdBuilder::listen`]'s address)
/// with isolated homes. Killed on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Option<Child>,
    ip: IpAddr,
    host: String,
    port: u16,
    netns: Option<Netns>,
    root: Option<PathBuf>,
    user: String,
    host_key_type: KeyType,
    host_keys: Vec<(KeyType, PathBuf)>,
    user_key: PathBuf,
    user_key_passphrase: Option<String>,
    unauthorized_key: PathBuf,
    known_hosts_line: Option<usize>,
    // Last: removed after everything else is dropped.
    dir: TempDir,
}

impl Sshd {
    /// Start an sshd with default settings, or `None` (after printing `SKIP: …` to
    /// stderr) when OpenSSH is not installed and not required. See the module docs.
    pub fn start() -> Option<Sshd> {
        SshdBuilder::default().start()
    }

    pub fn builder() -> SshdBuilder {
        SshdBuilder::default()
    }

    fn start_with(b: SshdBuilder, pick_port: &mut dyn FnMut() -> u16) -> Sshd {
        ensure_privsep_dir();
        let dir = tempfile::Builder::new()
            .prefix("ocr-sshd-")
            .tempdir()
            .expect("create the sshd temporary directory");
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).expect("chmod sshd dir");
        let local_home = root.join("local-home");
        let remote_home = root.join("remote-home");
        let keys = root.join("keys");
        for d in [local_home.join(".ssh"), remote_home.clone(), keys.clone()] {
            make_private_dir(&d);
        }

        // Host keys: the primary one first.
        let mut host_keys = Vec::new();
        let mut seen = Vec::new();
        for key_type in std::iter::once(b.host_key_type).chain(b.extra_host_keys.iter().copied()) {
            if seen.contains(&key_type) {
                continue;
            }
            seen.push(key_type);
            let path = root.join(format!("ssh_host_{}_key", key_type.keygen_name()));
            keygen(&path, key_type, "", "opencode-remote-test-host");
            host_keys.push((key_type, path));
        }

        // User keys.
        let user_key = if b.user_key_only_in_agent {
            keys.join(format!("agent_{}", b.user_key_type.identity_file_name()))
        } else {
            local_home
                .join(".ssh")
                .join(b.user_key_type.identity_file_name())
        };
        keygen(
            &user_key,
            b.user_key_type,
            b.user_key_passphrase.as_deref().unwrap_or(""),
            "opencode-remote-test-user",
        );
        let unauthorized_key = keys.join("unauthorized_ed25519");
        keygen(
            &unauthorized_key,
            KeyType::Ed25519,
            "",
            "opencode-remote-test-unauthorized",
        );
        let authorized = fs::read(pub_path(&user_key)).expect("read the user public key");
        write_private(&root.join("authorized_keys"), &authorized);

        // The remote home's startup files.
        let mut rc = format!(
            "# Written by the opencode-remote integration-test harness (tests/src/sshd.rs).\n\
             # sshd starts sessions in the passwd home (/root): move the session's first shell\n\
             # to the isolated HOME, once (shells started later by the session keep their cwd).\n\
             if [ -z \"${{{SESSION_MARKER}:-}}\" ]; then\n\
             \x20 export {SESSION_MARKER}=1\n\
             \x20 cd \"$HOME\" 2>/dev/null || true\n\
             fi\n",
        );
        if let Some(noise) = &b.login_noise {
            let path = root.join("login-noise.stdout");
            write_private(&path, noise);
            let _ = writeln!(rc, "cat {} 2>/dev/null", sh_quote(&path));
        }
        if let Some(noise) = &b.login_noise_stderr {
            let path = root.join("login-noise.stderr");
            write_private(&path, noise);
            let _ = writeln!(rc, "cat {} >&2 2>/dev/null", sh_quote(&path));
        }
        write_private(&remote_home.join(".bashrc"), rc.as_bytes());
        write_private(&remote_home.join(".profile"), rc.as_bytes());

        // Empty until sshd runs and the port is known.
        write_private(&local_home.join(".ssh").join("known_hosts"), b"");

        assert!(
            b.netns.is_none() || b.listen.is_some(),
            "SshdBuilder::netns needs SshdBuilder::listen (an address in the namespace)"
        );
        let ip = b.listen.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
        let fixed_port = b.listen.map(|a| a.port()).filter(|p| *p != 0);
        let mut sshd = Sshd {
            child: None,
            ip,
            host: ip.to_string(),
            port: 0,
            netns: b.netns.clone(),
            root: b.root.clone(),
            user: current_user(),
            host_key_type: b.host_key_type,
            host_keys,
            user_key,
            user_key_passphrase: b.user_key_passphrase.clone(),
            unauthorized_key,
            known_hosts_line: None,
            dir,
        };

        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = match fixed_port {
                Some(port) => port,
                None => pick_port(),
            };
            sshd.port = port;
            fs::write(sshd.config_path(), sshd.render_config(&b)).expect("write sshd_config");
            match sshd.spawn_and_wait(attempt) {
                Ok(()) => break,
                Err(StartError::PortTaken) => {
                    let _ = writeln!(failures, "attempt {attempt}: port {port} was taken");
                    if attempt == START_ATTEMPTS || fixed_port.is_some() {
                        panic!(
                            "sshd could not bind a port in {START_ATTEMPTS} attempts:\n{failures}\
                             --- sshd log ---\n{}",
                            sshd.log()
                        );
                    }
                }
                Err(StartError::Failed(why)) => panic!(
                    "sshd did not start: {why}\n--- sshd_config ---\n{}--- sshd log ---\n{}",
                    fs::read_to_string(sshd.config_path()).unwrap_or_default(),
                    sshd.log()
                ),
            }
        }

        sshd.set_known_hosts(b.known_hosts);
        sshd
    }

    fn render_config(&self, b: &SshdBuilder) -> String {
        let root = self.dir();
        // Split the extra lines: top-level lines go first (first value wins), `Match` blocks
        // last, top-level `SetEnv` arguments into the harness's `SetEnv` line.
        let mut top = Vec::new();
        let mut matches = Vec::new();
        let mut setenv_extra = Vec::new();
        for line in &b.extra_config {
            let trimmed = line.trim_start();
            let is_sep = |c: char| c.is_whitespace() || c == '=';
            let keyword = trimmed
                .split(is_sep)
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if !matches.is_empty() || keyword == "match" {
                matches.push(line.clone());
            } else if keyword == "setenv" {
                let args = trimmed[keyword.len()..]
                    .trim_start_matches(is_sep)
                    .trim_end();
                setenv_extra.push(args.to_owned());
            } else {
                top.push(line.clone());
            }
        }

        let mut c = String::new();
        c.push_str("# Generated by the opencode-remote integration-test harness.\n");
        if !top.is_empty() {
            c.push_str("# Test-specific settings (first value wins in sshd_config).\n");
            for line in &top {
                c.push_str(line);
                c.push('\n');
            }
        }
        let q = |p: &Path| format!("\"{}\"", p.display());
        let _ = writeln!(c, "ListenAddress {}", self.host);
        let _ = writeln!(c, "Port {}", self.port);
        let family = if self.ip.is_ipv4() { "inet" } else { "inet6" };
        let _ = writeln!(c, "AddressFamily {family}");
        for (_, key) in &self.host_keys {
            let _ = writeln!(c, "HostKey {}", q(key));
        }
        let _ = writeln!(c, "PidFile {}", q(&root.join("sshd.pid")));
        let _ = writeln!(c, "AuthorizedKeysFile {}", q(&self.authorized_keys_path()));
        c.push_str("AuthorizedPrincipalsFile none\n");
        // On Linux, sshd offers keyboard-interactive only through PAM (sshd's PAM service
        // then checks the account's real password).
        let _ = writeln!(
            c,
            "UsePAM {}",
            if b.kbd_interactive_authentication {
                "yes"
            } else {
                "no"
            }
        );
        c.push_str("StrictModes no\n");
        c.push_str("PermitRootLogin yes\n");
        c.push_str("PubkeyAuthentication yes\n");
        let yes_no = |v: bool| if v { "yes" } else { "no" };
        let _ = writeln!(
            c,
            "PasswordAuthentication {}",
            yes_no(b.password_authentication)
        );
        let _ = writeln!(
            c,
            "KbdInteractiveAuthentication {}",
            yes_no(b.kbd_interactive_authentication)
        );
        c.push_str("HostbasedAuthentication no\n");
        c.push_str("PermitEmptyPasswords no\n");
        c.push_str("AllowTcpForwarding yes\n");
        c.push_str("AllowStreamLocalForwarding yes\n");
        c.push_str("AllowAgentForwarding yes\n");
        c.push_str("GatewayPorts no\n");
        c.push_str("X11Forwarding no\n");
        c.push_str("PermitTunnel no\n");
        c.push_str("PermitTTY yes\n");
        c.push_str("PermitUserRC no\n");
        c.push_str("PermitUserEnvironment no\n");
        c.push_str("MaxSessions 100\n");
        c.push_str("MaxStartups 100:30:200\n");
        c.push_str("LoginGraceTime 60\n");
        c.push_str("LogLevel DEBUG1\n");
        c.push_str("UseDNS no\n");
        c.push_str("PrintMotd no\n");
        c.push_str("PrintLastLog no\n");
        c.push_str("TCPKeepAlive yes\n");
        let _ = writeln!(c, "ClientAliveInterval {}", b.client_alive_interval);
        let _ = writeln!(c, "ClientAliveCountMax {}", b.client_alive_count_max);
        c.push_str("Subsystem sftp internal-sftp\n");
        if sshd_version() >= (9, 8) {
            // Tests fail authentication on purpose; never lock 127.0.0.1 out.
            c.push_str("PerSourcePenalties no\n");
        }
        let mut setenv = format!("SetEnv \"HOME={}\"", self.remote_home().display());
        for (name, value) in &b.env {
            assert!(name != "HOME", "the harness owns HOME (remote_home)");
            let _ = write!(setenv, " \"{name}={value}\"");
        }
        for extra in &setenv_extra {
            setenv.push(' ');
            setenv.push_str(extra);
        }
        c.push_str(&setenv);
        c.push('\n');
        for line in &matches {
            c.push_str(line);
            c.push('\n');
        }
        c
    }

    /// Spawn sshd on `self.port` and wait until it serves the SSH banner.
    fn spawn_and_wait(&mut self, attempt: usize) -> Result<(), StartError> {
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .expect("open the sshd log");
        let _ = writeln!(
            log,
            "=== harness: starting sshd (attempt {attempt}) on {}{} ===",
            self.addr(),
            self.netns
                .as_ref()
                .map(|ns| format!(" in network namespace {}", ns.name()))
                .unwrap_or_default()
        );
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        // `-E <log>` rather than `-e`: with `-e`, the forked session process logs (at DEBUG1)
        // to its stderr after that became the channel's stderr, so "debug1: …" lines would
        // reach the client on the exec channel's stderr. sshd's own stderr (errors before
        // logging is set up) goes to the same file.
        let mut command = match (&self.netns, &self.root) {
            (Some(ns), _) => ns.command(SSHD_PATH),
            (None, Some(root)) => chrooted(root, self.dir()),
            (None, None) => Command::new(SSHD_PATH),
        };
        let child = command
            .arg("-D")
            .arg("-E")
            .arg(&log_path)
            .arg("-f")
            .arg(self.config_path())
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| StartError::Failed(format!("spawn {SSHD_PATH}: {e}")))?;
        self.child = Some(child);

        let listening = format!("Server listening on {} port {}.", self.host, self.port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let since = self.log_since(offset);
            let child = self.child.as_mut().expect("sshd child");
            if let Some(status) = child.try_wait().expect("wait for sshd") {
                self.child = None;
                if since.contains("Address already in use") || since.contains("Cannot bind any") {
                    return Err(StartError::PortTaken);
                }
                return Err(StartError::Failed(format!(
                    "sshd exited early with {status}"
                )));
            }
            if since.contains(&listening) {
                break;
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(StartError::Failed(format!(
                    "no \"{listening}\" within {START_TIMEOUT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }

        // Our sshd says it listens; make sure it really answers with an SSH banner.
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let addr = self.addr();
            let banner = match &self.netns {
                Some(ns) => ns.run(move || read_banner(addr)),
                None => read_banner(addr),
            };
            match banner {
                Ok(banner) if banner.starts_with("SSH-2.0-") => return Ok(()),
                Ok(banner) => last_error = format!("unexpected banner {banner:?}"),
                Err(e) => last_error = e.to_string(),
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(StartError::Failed(format!(
            "no SSH banner on {}: {last_error}",
            self.addr()
        )))
    }

    fn log_since(&self, offset: u64) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// SIGTERM, then SIGKILL after [`KILL_GRACE`]; waits. Only the listening sshd: session
    /// processes it forked are left alone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Stop the listening sshd (existing sessions keep running). See [`Sshd::restart`].
    pub fn stop(&mut self) {
        self.kill();
    }

    /// (Re)start sshd on the same port with the same keys and config, e.g. after
    /// [`Sshd::stop`] in reconnect tests. Panics if the port cannot be bound again.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_and_wait(0) {
                Ok(()) => return,
                Err(StartError::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::PortTaken) => {
                    panic!("sshd restart: port {} is taken\n{}", self.port, self.log())
                }
                Err(StartError::Failed(why)) => {
                    panic!(
                        "sshd restart failed: {why}\n--- sshd log ---\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// Whether the listening sshd is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The pid of the listening sshd (`None` after [`Sshd::stop`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The listen address as text (`127.0.0.1` unless [`SshdBuilder::listen`] said
    /// otherwise).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The namespace sshd runs in ([`SshdBuilder::netns`]).
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port` (or the [`SshdBuilder::listen`] address).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The login user: the user running the tests (`root`).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `user@127.0.0.1` (`user@<listen address>`).
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The harness's temporary directory (config, log, keys, both homes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The laptop-side `HOME` for the client under test.
    pub fn local_home(&self) -> PathBuf {
        self.dir().join("local-home")
    }

    /// The `HOME` of sessions on the "host".
    pub fn remote_home(&self) -> PathBuf {
        self.dir().join("remote-home")
    }

    /// The authorized user private key (`local_home/.ssh/id_<type>`, or under `dir()/keys`
    /// with [`SshdBuilder::user_key_only_in_agent`]). The public key is next to it (`.pub`).
    pub fn user_key(&self) -> &Path {
        &self.user_key
    }

    /// The passphrase of [`Sshd::user_key`], if any.
    pub fn user_key_passphrase(&self) -> Option<&str> {
        self.user_key_passphrase.as_deref()
    }

    /// A second ed25519 user key (unencrypted, under `dir()/keys`, not in `local_home`) that
    /// is *not* in authorized_keys.
    pub fn unauthorized_key(&self) -> &Path {
        &self.unauthorized_key
    }

    /// `local_home/.ssh/known_hosts`.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.local_home().join(".ssh").join("known_hosts")
    }

    /// The 1-based line of the `[127.0.0.1]:PORT` entry in known_hosts (`None` when empty).
    /// With [`KnownHosts::Wrong`] this is the line OpenSSH reports as the offending key.
    pub fn known_hosts_entry_line(&self) -> Option<usize> {
        self.known_hosts_line
    }

    /// Rewrite the local known_hosts; returns [`Sshd::known_hosts_entry_line`].
    pub fn set_known_hosts(&mut self, known_hosts: KnownHosts) -> Option<usize> {
        let path = self.known_hosts_path();
        let (content, line) = match known_hosts {
            KnownHosts::Correct | KnownHosts::Hashed => {
                (format!("{}\n", self.host_key_line()), Some(1))
            }
            KnownHosts::Empty => (String::new(), None),
            KnownHosts::Wrong => {
                let wrong = self.dir().join("keys").join("wrong_host_key");
                if !wrong.exists() {
                    keygen(
                        &wrong,
                        self.host_key_type,
                        "",
                        "opencode-remote-test-wrong-host",
                    );
                }
                let other = self.dir().join("keys").join("other_host_key");
                if !other.exists() {
                    keygen(
                        &other,
                        KeyType::Ed25519,
                        "",
                        "opencode-remote-test-other-host",
                    );
                }
                let content = format!(
                    "# known_hosts written by the opencode-remote test harness\n\
                     [127.0.0.2]:{port} {other}\n\
                     {entry} {wrong}\n",
                    port = self.port,
                    other = public_key_of(&other),
                    entry = self.known_hosts_host(),
                    wrong = public_key_of(&wrong),
                );
                (content, Some(3))
            }
        };
        write_private(&path, content.as_bytes());
        if known_hosts == KnownHosts::Hashed {
            let out = Command::new("ssh-keygen")
                .arg("-H")
                .arg("-f")
                .arg(&path)
                .stdin(Stdio::null())
                .output()
                .expect("run ssh-keygen -H");
            assert!(
                out.status.success(),
                "ssh-keygen -H failed: {}",
                lossy(&out.stderr)
            );
            let _ = fs::remove_file(path.with_file_name("known_hosts.old"));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        self.known_hosts_line = line;
        line
    }

    /// The authorized_keys file sshd reads (holds [`Sshd::user_key`]'s public key).
    pub fn authorized_keys_path(&self) -> PathBuf {
        self.dir().join("authorized_keys")
    }

    /// Append a public key file's key to authorized_keys (e.g. the unauthorized key).
    pub fn authorize_key(&self, public_key: &Path) {
        let key = fs::read_to_string(public_key).expect("read public key");
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.authorized_keys_path())
            .expect("open authorized_keys");
        writeln!(f, "{}", key.trim_end()).expect("append to authorized_keys");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("sshd_config")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("sshd.log")
    }

    /// The whole sshd log so far (all start attempts, the listener and all connections).
    pub fn log(&self) -> String {
        lossy(&fs::read(self.log_path()).unwrap_or_default())
    }

    /// The type of the primary host key.
    pub fn host_key_type(&self) -> KeyType {
        self.host_key_type
    }

    /// The primary host key's public key: `<type> <base64>`.
    pub fn host_public_key(&self) -> String {
        public_key_of(&self.host_keys[0].1)
    }

    /// All host keys the server offers, primary first: `(type, "<type> <base64>")`.
    pub fn host_public_keys(&self) -> Vec<(KeyType, String)> {
        self.host_keys
            .iter()
            .map(|(t, path)| (*t, public_key_of(path)))
            .collect()
    }

    /// The known_hosts line for the primary host key: `[127.0.0.1]:PORT <type> <base64>`.
    pub fn host_key_line(&self) -> String {
        format!("{} {}", self.known_hosts_host(), self.host_public_key())
    }

    /// The primary host key's `SHA256:…` fingerprint, from `ssh-keygen -lf`.
    pub fn host_key_fingerprint(&self) -> String {
        fingerprint(&pub_path(&self.host_keys[0].1))
    }

    /// The user key's `SHA256:…` fingerprint.
    pub fn user_key_fingerprint(&self) -> String {
        fingerprint(&pub_path(&self.user_key))
    }

    /// The name of this server in known_hosts, as OpenSSH writes it: `host` for port 22,
    /// `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    fn known_hosts_host(&self) -> String {
        self.known_hosts_name()
    }

    /// Append `other`'s [`host_key_line`](Self::host_key_line) to this server's local
    /// known_hosts (a jump host or target reached from this laptop side); returns its 1-based
    /// line number.
    pub fn add_known_host(&self, other: &Sshd) -> usize {
        let path = self.known_hosts_path();
        let mut text = fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&other.host_key_line());
        text.push('\n');
        write_private(&path, text.as_bytes());
        text.lines().count()
    }

    /// Authorize `other`'s user key here, so the laptop side of `other` (its
    /// [`local_home`](Self::local_home)) can log in to this server too.
    pub fn authorize_user_key_of(&self, other: &Sshd) {
        self.authorize_key(&pub_path(other.user_key()));
    }

    /// OpenSSH client options shared by the `ssh_command*` functions: no config file,
    /// port, the local known_hosts only, strict host key checking, batch mode, `LogLevel
    /// ERROR`, no known_hosts updates, no multiplexing. No identity and no destination.
    ///
    /// ssh uses the *first* value given for an option, so these cannot be overridden by
    /// appending `-o` options; build a `Command` from scratch for that.
    pub fn ssh_base_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &dyn AsRef<OsStr>| args.push(a.as_ref().to_owned());
        push(&"-F");
        push(&"/dev/null");
        push(&"-p");
        push(&self.port.to_string());
        for opt in [
            format!(
                "UserKnownHostsFile=\"{}\"",
                self.known_hosts_path().display()
            ),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "BatchMode=yes".to_owned(),
            "LogLevel=ERROR".to_owned(),
            "UpdateHostKeys=no".to_owned(),
            "ControlMaster=no".to_owned(),
            "ControlPath=none".to_owned(),
            "ConnectTimeout=10".to_owned(),
        ] {
            push(&"-o");
            push(&opt);
        }
        args
    }

    /// An OpenSSH `ssh` command that logs in with [`Sshd::user_key`] (`IdentitiesOnly=yes`,
    /// no agent: `SSH_AUTH_SOCK` is removed) as `user@127.0.0.1`. Append the remote command.
    /// The baseline for tests and benchmarks.
    pub fn ssh_command(&self) -> Command {
        self.ssh_command_with_identity(&self.user_key)
    }

    /// Like [`Sshd::ssh_command`] but with another identity file.
    pub fn ssh_command_with_identity(&self, key: &Path) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env("HOME", self.local_home())
            .env_remove("SSH_AUTH_SOCK")
            .args(self.ssh_base_args())
            .args(["-o", "IdentitiesOnly=yes", "-i"])
            .arg(key)
            .arg(self.destination());
        cmd
    }

    /// Like [`Sshd::ssh_command`] but authenticating through `agent` only: `-i` names the
    /// user key's *public* file, so ssh needs the agent to sign.
    pub fn ssh_command_with_agent(&self, agent: &Agent) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env("HOME", self.local_home())
            .env("SSH_AUTH_SOCK", agent.sock())
            .args(self.ssh_base_args())
            .args(["-o", "IdentitiesOnly=yes", "-i"])
            .arg(pub_path(&self.user_key))
            .arg(self.destination());
        cmd
    }

    /// Start an `ssh-agent` holding the authorized user key (decrypted with the passphrase
    /// if it has one). Killed on drop.
    pub fn start_agent(&self) -> Agent {
        let agent = Agent::start();
        agent.add_with_passphrase(&self.user_key, self.user_key_passphrase.as_deref());
        agent
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "===== sshd log ({}{}, {} is removed now) =====\n{}\n===== end of sshd log =====",
                self.addr(),
                self.netns
                    .as_ref()
                    .map(|ns| format!(" in {}", ns.name()))
                    .unwrap_or_default(),
                self.dir().display(),
                self.log()
            );
        }
    }
}

enum StartError {
    PortTaken,
    Failed(String),
}

/// An `ssh-agent -D -a <sock>` child process with its own temporary directory. Killed on
/// drop.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    sock: PathBuf,
    // Last: removed after the agent is killed.
    dir: TempDir,
}

impl Agent {
    /// Start an empty agent. Panics on failure.
    pub fn start() -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("ocr-agent-")
            .tempdir()
            .expect("create the agent temporary directory");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        let sock = dir.path().join("agent.sock");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.path().join("agent.log"))
            .expect("open the agent log");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ssh-agent");
        let mut agent = Agent {
            child: Some(child),
            sock,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !agent.sock.exists() {
            let child = agent.child.as_mut().expect("agent child");
            if let Ok(Some(status)) = child.try_wait() {
                agent.child = None;
                panic!("ssh-agent exited with {status}: {}", agent.log());
            }
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not create its socket"
            );
            thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    /// The socket, for `SSH_AUTH_SOCK`.
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `ssh-add <key>` (unencrypted key). Panics on failure.
    pub fn add(&self, key: &Path) {
        self.add_with_passphrase(key, None);
    }

    /// `ssh-add <key>`, answering the passphrase prompt through `SSH_ASKPASS`.
    pub fn add_with_passphrase(&self, key: &Path, passphrase: Option<&str>) {
        let mut cmd = self.ssh_add();
        cmd.arg(key);
        if let Some(passphrase) = passphrase {
            let askpass = self.dir.path().join("askpass.sh");
            let script = format!("#!/bin/sh\nprintf '%s\\n' {}\n", sh_quote_str(passphrase));
            write_private(&askpass, script.as_bytes());
            fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).expect("chmod");
            cmd.env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force");
            cmd.env("DISPLAY", ":0");
        }
        let out = cmd.output().expect("run ssh-add");
        assert!(
            out.status.success(),
            "ssh-add {} failed: {}{}",
            key.display(),
            lossy(&out.stdout),
            lossy(&out.stderr)
        );
    }

    /// `ssh-add -l` output (one fingerprint line per key; empty when there is none).
    pub fn list(&self) -> String {
        let out = self.ssh_add().arg("-l").output().expect("run ssh-add -l");
        if out.status.code() == Some(1) {
            return String::new();
        }
        assert!(
            out.status.success(),
            "ssh-add -l failed: {}",
            lossy(&out.stderr)
        );
        lossy(&out.stdout)
    }

    fn ssh_add(&self) -> Command {
        let mut cmd = Command::new("ssh-add");
        cmd.env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("SSH_AUTH_SOCK", &self.sock)
            .stdin(Stdio::null());
        cmd
    }

    fn log(&self) -> String {
        lossy(&fs::read(self.dir.path().join("agent.log")).unwrap_or_default())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Why sshd cannot be run here, if it cannot.
fn check_prerequisites() -> Result<(), String> {
    if !Path::new(SSHD_PATH).is_file() {
        return Err(format!(
            "{SSHD_PATH} not found (apt-get install openssh-server)"
        ));
    }
    if find_in_path("ssh-keygen").is_none() {
        return Err("ssh-keygen not found in PATH (apt-get install openssh-client)".to_owned());
    }
    Ok(())
}

fn sshd_required() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    std::env::var_os("OPENCODE_REMOTE_REQUIRE_SSHD").is_some_and(|v| v == "1") || set("CI")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| SYSTEM_PATH.into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `(major, minor)` of the installed sshd, from `sshd -V` (`OpenSSH_9.2p1, …`).
fn sshd_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new(SSHD_PATH)
            .arg("-V")
            .stdin(Stdio::null())
            .output();
        let text = out.map(|o| format!("{}{}", lossy(&o.stderr), lossy(&o.stdout)));
        text.ok()
            .and_then(|t| parse_openssh_version(&t))
            .unwrap_or((0, 0))
    })
}

fn parse_openssh_version(text: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find("OpenSSH_")? + "OpenSSH_".len()..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// sshd refuses to start without its privilege separation directory.
/// `unshare --mount … chroot <root> /usr/sbin/sshd`, with the root's mounts made inside the
/// new mount namespace only (they vanish with its last process). `unshare` and the shell
/// `exec` into `chroot` and sshd, so the child is sshd itself.
fn chrooted(root: &Path, dir: &Path) -> Command {
    const SCRIPT: &str = r#"set -e
root=$1; dir=$2; shift 2
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mkdir -p "$root/run/sshd" "$root$dir"
mount --bind "$dir" "$root$dir"
exec chroot "$root" "$@""#;
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .arg(root)
        .arg(dir)
        .arg(SSHD_PATH);
    command
}

fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if !dir.is_dir()
        && fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .is_err()
    {
        // Not root: sshd will say what is wrong, and the panic shows its log.
    }
}

/// A port on `ip` (inside `netns` when given) that was free a moment ago. sshd binding may
/// still race with another process; [`Sshd`] retries with a new port when that happens.
fn free_port_on(ip: IpAddr, netns: Option<&Netns>) -> u16 {
    let bind = move || {
        let listener =
            TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip} port 0: {e}"));
        listener.local_addr().expect("local_addr").port()
    };
    match netns {
        Some(ns) => ns.run(bind),
        None => bind(),
    }
}

fn read_banner(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut banner = Vec::new();
    let mut byte = [0u8; 1];
    while banner.len() < 255 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        if byte[0] == b'\n' {
            break;
        }
        banner.push(byte[0]);
    }
    Ok(lossy(&banner).trim_end().to_owned())
}

fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + KILL_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn keygen(path: &Path, key_type: KeyType, passphrase: &str, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            key_type.keygen_name(),
            "-b",
            key_type.bits(),
            "-N",
            passphrase,
        ])
        .args(["-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen -t {} -f {} failed: {}",
        key_type.keygen_name(),
        path.display(),
        lossy(&out.stderr)
    );
    for p in [path.to_path_buf(), pub_path(path)] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod key");
    }
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// `<type> <base64>` of a private key's `.pub` file (without the comment).
fn public_key_of(key: &Path) -> String {
    let text = fs::read_to_string(pub_path(key)).expect("read public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn fingerprint(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(public_key)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen -l");
    assert!(
        out.status.success(),
        "ssh-keygen -l failed: {}",
        lossy(&out.stderr)
    );
    let text = lossy(&out.stdout);
    text.split_whitespace()
        .find(|f| f.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

fn make_private_dir(dir: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .expect("create directory");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).expect("chmod directory");
}

/// Write a file with mode 0600 (also when it already exists).
fn write_private(path: &Path, content: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(content)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod file");
}

fn sh_quote(path: &Path) -> String {
    sh_quote_str(&path.to_string_lossy())
}

fn sh_quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The name of the user running the tests (sshd only lets a non-root sshd log in as that
/// user).
fn current_user() -> String {
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return "root".to_owned();
    }
    let raw = uid.as_raw().to_string();
    if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let mut fields = line.split(':');
            if let (Some(name), _, Some(id)) = (fields.next(), fields.next(), fields.next())
                && id == raw
            {
                return name.to_owned();
            }
        }
    }
    std::env::var("USER").unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut cmd: Command) -> std::process::Output {
        cmd.stdin(Stdio::null()).output().expect("run ssh")
    }

    fn stdout_of(cmd: Command, sshd: &Sshd) -> String {
        let out = run(cmd);
        assert!(
            out.status.success(),
            "ssh failed ({}): {}\n--- sshd log ---\n{}",
            out.status,
            lossy(&out.stderr),
            sshd.log()
        );
        lossy(&out.stdout)
    }

    #[test]
    fn echo_ok_and_isolated_home() {
        let sshd = crate::require_sshd!();
        let home = sshd.remote_home().display().to_string();
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo ok; echo $HOME; cd ~ && pwd; cd - >/dev/null; pwd; echo $SHLVL");
        let out = run(cmd);
        assert!(out.status.success(), "{}", lossy(&out.stderr));
        // `pwd` before `cd ~` shows that bash ran $HOME/.bashrc (it does `cd "$HOME"`).
        assert_eq!(
            lossy(&out.stdout),
            format!("ok\n{home}\n{home}\n{home}\n1\n")
        );
        // Nothing from sshd's own logging leaks into the session.
        assert_eq!(lossy(&out.stderr), "");

        // A login shell (no command) reads $HOME/.profile.
        let mut cmd = sshd.ssh_command();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ssh");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"echo $HOME; pwd; exit\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", lossy(&out.stderr));
        assert_eq!(lossy(&out.stdout), format!("{home}\n{home}\n"));

        assert!(
            sshd.log().contains("Accepted publickey for root"),
            "{}",
            sshd.log()
        );
        assert!(sshd.host_key_fingerprint().starts_with("SHA256:"));
        let line = sshd.host_key_line();
        assert!(line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port())));
        let known = fs::read_to_string(sshd.known_hosts_path()).unwrap();
        assert_eq!(known, format!("{line}\n"));
        for p in [
            sshd.local_home(),
            sshd.local_home().join(".ssh"),
            sshd.remote_home(),
        ] {
            assert_eq!(p.metadata().unwrap().permissions().mode() & 0o777, 0o700);
        }
        for p in [sshd.user_key().to_path_buf(), sshd.known_hosts_path()] {
            assert_eq!(p.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn login_noise_appears_once_per_login() {
        let sshd = crate::require_sshd!(
            Sshd::builder()
                .login_noise("NOISE-OUT 1\n")
                .login_noise_stderr("NOISE-ERR 2\n")
        );
        let mut cmd = sshd.ssh_command();
        // A nested bash (SHLVL=2) does not source .bashrc again.
        cmd.arg("echo payload; bash -c 'echo nested'; true");
        let out = run(cmd);
        assert!(out.status.success(), "{}", lossy(&out.stderr));
        assert_eq!(lossy(&out.stdout), "NOISE-OUT 1\npayload\nnested\n");
        assert_eq!(lossy(&out.stderr), "NOISE-ERR 2\n");

        // But bash `exec`s the last command of `bash -c` and lowers SHLVL for it, so an
        // exec'd bash is top-level again and does source .bashrc (SSH_CLIENT is set). The
        // one-time `cd "$HOME"` is not repeated.
        let mut cmd = sshd.ssh_command();
        cmd.arg("cd / && exec bash -c 'echo $SHLVL; pwd'");
        let out = run(cmd);
        assert!(out.status.success(), "{}", lossy(&out.stderr));
        assert_eq!(lossy(&out.stdout), "NOISE-OUT 1\nNOISE-OUT 1\n1\n/\n");

        let mut cmd = sshd.ssh_command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ssh");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"echo payload; exit\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(lossy(&out.stdout), "NOISE-OUT 1\npayload\n");
    }

    #[test]
    fn parallel_servers_get_different_ports() {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                thread::spawn(|| {
                    let sshd = Sshd::start()?;
                    let mut cmd = sshd.ssh_command();
                    cmd.arg("echo $HOME");
                    let out = stdout_of(cmd, &sshd);
                    assert_eq!(out.trim_end(), sshd.remote_home().to_str().unwrap());
                    Some(sshd)
                })
            })
            .collect();
        let servers: Vec<Sshd> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        if let [a, b] = &servers[..] {
            assert_ne!(a.port(), b.port());
            assert_ne!(a.remote_home(), b.remote_home());
        }
    }

    #[test]
    fn unknown_host_key_fails_verification() {
        let sshd = crate::require_sshd!(Sshd::builder().no_known_hosts());
        assert_eq!(fs::read(sshd.known_hosts_path()).unwrap(), b"");
        assert_eq!(sshd.known_hosts_entry_line(), None);
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo should-not-run");
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(255));
        assert!(out.stdout.is_empty());
        let stderr = lossy(&out.stderr);
        assert!(stderr.contains("Host key verification failed"), "{stderr}");
    }

    #[test]
    fn changed_host_key_is_reported_with_line() {
        let sshd = crate::require_sshd!(Sshd::builder().wrong_known_hosts());
        let line = sshd.known_hosts_entry_line().expect("entry line");
        let mut cmd = sshd.ssh_command();
        cmd.arg("true");
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(255));
        let stderr = lossy(&out.stderr);
        assert!(
            stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{stderr}"
        );
        let offending = format!("{}:{line}", sshd.known_hosts_path().display());
        assert!(stderr.contains(&offending), "no {offending} in {stderr}");
        assert!(stderr.contains(&sshd.host_key_fingerprint()), "{stderr}");
    }

    #[test]
    fn hashed_known_hosts_and_ecdsa_host_key() {
        let sshd = crate::require_sshd!(
            Sshd::builder()
                .hashed_known_hosts()
                .host_key_type(KeyType::Ecdsa)
                .extra_host_key(KeyType::Ed25519)
        );
        let known = fs::read_to_string(sshd.known_hosts_path()).unwrap();
        assert!(known.starts_with("|1|"), "{known}");
        assert!(known.contains("ecdsa-sha2-nistp256"), "{known}");
        assert_eq!(sshd.host_public_keys().len(), 2);
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo ok");
        assert_eq!(stdout_of(cmd, &sshd), "ok\n");
    }

    #[test]
    fn unauthorized_key_is_rejected() {
        let sshd = crate::require_sshd!();
        let mut cmd = sshd.ssh_command_with_identity(sshd.unauthorized_key());
        cmd.arg("true");
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(255));
        let stderr = lossy(&out.stderr);
        assert!(stderr.contains("Permission denied"), "{stderr}");

        sshd.authorize_key(&pub_path(sshd.unauthorized_key()));
        let mut cmd = sshd.ssh_command_with_identity(sshd.unauthorized_key());
        cmd.arg("echo ok");
        assert_eq!(stdout_of(cmd, &sshd), "ok\n");
    }

    #[test]
    fn agent_holds_the_encrypted_user_key() {
        let sshd = crate::require_sshd!(
            Sshd::builder()
                .user_key_only_in_agent()
                .user_key_passphrase("it's secret")
        );
        assert!(!sshd.user_key().starts_with(sshd.local_home()));
        let agent = sshd.start_agent();
        assert!(
            agent.list().contains(&sshd.user_key_fingerprint()),
            "{}",
            agent.list()
        );
        let mut cmd = sshd.ssh_command_with_agent(&agent);
        cmd.arg("echo via-agent");
        assert_eq!(stdout_of(cmd, &sshd), "via-agent\n");

        // Without the agent the encrypted key cannot be used in batch mode.
        let mut cmd = sshd.ssh_command();
        cmd.arg("true");
        assert_eq!(run(cmd).status.code(), Some(255));
        let sock = agent.sock().to_path_buf();
        drop(agent);
        assert!(!sock.exists() || std::os::unix::net::UnixStream::connect(&sock).is_err());
    }

    #[test]
    fn extra_config_overrides_defaults_and_env_is_merged() {
        let sshd = crate::require_sshd!(
            Sshd::builder()
                .extra_config(
                    "MaxSessions 3\nSetEnv FROM_EXTRA=1\nMatch User nobody\n  X11Forwarding yes"
                )
                .env("FROM_BUILDER", "a b")
        );
        let config = fs::read_to_string(sshd.config_path()).unwrap();
        assert!(config.find("MaxSessions 3").unwrap() < config.find("MaxSessions 100").unwrap());
        assert!(config.trim_end().ends_with("X11Forwarding yes"), "{config}");
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo \"$HOME|$FROM_BUILDER|$FROM_EXTRA\"");
        let home = sshd.remote_home().display().to_string();
        assert_eq!(stdout_of(cmd, &sshd), format!("{home}|a b|1\n"));
    }

    #[test]
    fn restart_on_the_same_port() {
        let mut sshd = crate::require_sshd!();
        let port = sshd.port();
        sshd.stop();
        assert!(!sshd.is_running());
        assert!(TcpStream::connect(sshd.addr()).is_err());
        sshd.restart();
        assert!(sshd.is_running());
        assert_eq!(sshd.port(), port);
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo again");
        assert_eq!(stdout_of(cmd, &sshd), "again\n");
    }

    #[test]
    fn drop_stops_only_the_listener() {
        let sshd = crate::require_sshd!();
        let pid = rustix::process::Pid::from_raw(sshd.pid().unwrap() as i32).unwrap();
        // A session that outlives the connection's sshd stays alive after the drop.
        let mut cmd = sshd.ssh_command();
        cmd.arg("setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $!");
        let orphan: i32 = stdout_of(cmd, &sshd).trim().parse().unwrap();
        let orphan = rustix::process::Pid::from_raw(orphan).unwrap();
        drop(sshd);
        assert!(
            rustix::process::test_kill_process(pid).is_err(),
            "sshd still running"
        );
        assert!(
            rustix::process::test_kill_process(orphan).is_ok(),
            "orphan was killed"
        );
        let _ = rustix::process::kill_process(orphan, rustix::process::Signal::TERM);
    }

    /// A failing test prints the sshd log from `Drop` (visible with `--nocapture`).
    #[test]
    #[should_panic(expected = "deliberate failure")]
    fn failing_test_shows_the_log() {
        let sshd = crate::require_sshd!();
        let mut cmd = sshd.ssh_command();
        cmd.arg("true");
        let _ = run(cmd);
        panic!("deliberate failure on port {}", sshd.port());
    }

    #[test]
    fn retries_when_the_port_is_taken() {
        if check_prerequisites().is_err() {
            return;
        }
        let taken = TcpListener::bind((HOST, 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let mut ports = vec![
            free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST), None),
            taken_port,
        ];
        let sshd = Sshd::start_with(Sshd::builder(), &mut || ports.pop().unwrap());
        assert_ne!(sshd.port(), taken_port);
        assert!(
            sshd.log().contains("Address already in use"),
            "{}",
            sshd.log()
        );
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo ok");
        assert_eq!(stdout_of(cmd, &sshd), "ok\n");
    }

    #[test]
    fn sshd_in_a_network_namespace_on_port_22() {
        use crate::netns::{End, Netns, Veth};
        let Some(ns) = Netns::new() else { return };
        let veth = Veth::new(End::Root, End::Ns(&ns));
        let sshd = crate::require_sshd!(
            Sshd::builder()
                .netns(&ns)
                .listen(SocketAddr::from((veth.b_addr(), 22)))
        );
        let host = veth.b_addr().to_string();
        assert_eq!(sshd.host(), host);
        assert_eq!(sshd.port(), 22);
        assert_eq!(sshd.addr(), SocketAddr::from((veth.b_addr(), 22)));
        // The pid is sshd's own (`ip netns exec` execs it), so kill-by-pid works.
        let pid = sshd.pid().unwrap();
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, Path::new(SSHD_PATH));
        let own_ns = fs::read_link("/proc/self/ns/net").unwrap();
        assert_ne!(
            fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(),
            own_ns
        );
        // OpenSSH's known_hosts name for port 22 is the bare host.
        assert_eq!(sshd.known_hosts_name(), host);
        assert!(
            sshd.host_key_line()
                .starts_with(&format!("{host} ssh-ed25519 "))
        );
        let mut cmd = sshd.ssh_command();
        cmd.arg("echo $HOME; echo $SSH_CONNECTION");
        let out = stdout_of(cmd, &sshd);
        let home = sshd.remote_home().display().to_string();
        assert!(
            out.starts_with(&format!("{home}\n{} ", veth.a_addr())),
            "{out}"
        );
        assert!(out.trim_end().ends_with(&format!("{host} 22")), "{out}");
        // A laptop side shared with another server.
        let other = crate::require_sshd!();
        sshd.authorize_user_key_of(&other);
        assert_eq!(other.add_known_host(&sshd), 2);
        let known_hosts = format!("UserKnownHostsFile={}", other.known_hosts_path().display());
        let mut cmd = Command::new("ssh");
        cmd.env("HOME", other.local_home())
            .env_remove("SSH_AUTH_SOCK")
            .args(["-F", "/dev/null", "-o", &known_hosts])
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
            ])
            .arg(other.user_key())
            .arg(sshd.destination())
            .arg("echo shared");
        assert_eq!(stdout_of(cmd, &sshd), "shared\n");
    }

    #[test]
    fn version_parsing() {
        assert_eq!(parse_openssh_version("OpenSSH_9.2p1 Debian"), Some((9, 2)));
        assert_eq!(
            parse_openssh_version("OpenSSH_10.0, OpenSSL"),
            Some((10, 0))
        );
        assert_eq!(parse_openssh_version("nothing"), None);
    }
}
