//! `opencode-remote-bench`: our transport against the predecessor's, on this machine, in one run.
//!
//! * **ours**: `opencode-remote bridge root@127.0.0.1:PORT` against a harness sshd (the bridge
//!   installs and launches the stub on an SSH exec channel; requests go HTTP/1.1 → bridge → one
//!   HTTP/2 connection → stub).
//! * **ssh -N -L** (the baseline, the seed's transport): the *same* router (`remote::App`) served
//!   over HTTP/1.1 on `127.0.0.1:<random>` by a child process of this binary (re-executed with
//!   `--serve-baseline`), reached through OpenSSH `ssh -N -L`. sshd keeps Nagle on for a
//!   tunnel without a session (PERF pitfall 2b); that is measured as is.
//! * **ssh -L +session**: the same with a remote command instead of `-N` (sshd turns Nagle off).
//! * **direct**: the baseline server without SSH (the floor).
//!
//! Metrics: sequential GET latency on one keep-alive connection, 64 concurrent keep-alive
//! clients, one big streamed body each way, SSE delivery latency, cold connect, idle RSS, and
//! the CPU each process spends. Targets are printed with PASS/MISS; misses do not change the
//! exit code (errors do).
//!
//! ```text
//! cargo build --release
//! cargo run --release -p integration-tests --bin opencode-remote-bench -- [--quick] [--json FILE]
//!     [--only seq,conc,body,upload,sse,cold] [--n N] [--clients C] [--duration S]
//!     [--body-mib M] [--sse-count C] [--cold-runs K] [--no-upload] [--repeat R]
//! ```

#![allow(clippy::print_stdout)] // a benchmark prints its table

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitCode, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use integration_tests::bins;
use integration_tests::sshd::Sshd;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};

/// Hidden flag: serve the baseline HTTP/1.1 server (re-exec of this binary).
const SERVE_FLAG: &str = "--serve-baseline";

const HEALTH: &str = "/global/health";
const DIAG: &str = "/x-opencode-remote/diag";

/// One measurement may not take longer than this.
const CELL_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(SERVE_FLAG) {
        return match serve_baseline(args.get(1).map(PathBuf::from)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("baseline server: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match Opts::parse(&args) {
        Ok(Some(opts)) => opts,
        Ok(None) => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The load generator is one thread (like `wrk -t1`): the machine has 2 cores, and the
    // bridge, ssh, sshd and the servers need them.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(opts));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some measurements failed (see ERR cells above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

const USAGE: &str = "usage: opencode-remote-bench [--quick] [--json FILE] [--only LIST]
    [--n N] [--clients C] [--duration SECS] [--body-mib M] [--no-upload]
    [--sse-count C] [--cold-runs K] [--repeat R]

  --quick        smoke run: 200 requests, 2 s, 32 MiB bodies, 100 SSE events, 3 cold runs
  --json FILE    also write the results as JSON
  --only LIST    comma-separated subset of: seq,conc,body,upload,sse,cold (RSS is always taken)
  --n N          sequential requests (default 2000)
  --clients C    concurrent keep-alive clients (default 64)
  --duration S   seconds of concurrent load (default 5)
  --body-mib M   body size for the GET/upload throughput runs (default 256)
  --no-upload    skip the upload (POST diag/sink) run
  --sse-count C  SSE events at 10 ms intervals (default 300)
  --cold-runs K  cold connects per path; the median is reported (default 5)
  --repeat R     rounds of seq/conc/body/upload/sse, paths interleaved; medians are reported
                 (default 1; use 3+ on a machine that is not otherwise idle)";

const METRICS: [&str; 6] = ["seq", "conc", "body", "upload", "sse", "cold"];

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    seq_n: usize,
    clients: usize,
    duration: Duration,
    body_bytes: u64,
    upload: bool,
    sse_count: u64,
    sse_interval_ms: u64,
    cold_runs: usize,
    repeat: usize,
    json: Option<PathBuf>,
    only: BTreeSet<String>,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Option<Opts>> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = Opts {
            quick,
            seq_n: if quick { 200 } else { 2000 },
            clients: 64,
            duration: Duration::from_secs(if quick { 2 } else { 5 }),
            body_bytes: if quick { 32 << 20 } else { 256 << 20 },
            upload: true,
            sse_count: if quick { 100 } else { 300 },
            sse_interval_ms: 10,
            cold_runs: if quick { 3 } else { 5 },
            repeat: 1,
            json: None,
            only: METRICS.iter().map(|m| (*m).to_owned()).collect(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--quick" => {}
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                "--json" => opts.json = Some(PathBuf::from(value("--json")?)),
                "--only" => {
                    let list = value("--only")?;
                    let mut only = BTreeSet::new();
                    for metric in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                        if metric == "rss" {
                            continue;
                        }
                        if !METRICS.contains(&metric) {
                            bail!("unknown metric `{metric}` (one of {})", METRICS.join(","));
                        }
                        only.insert(metric.to_owned());
                    }
                    opts.only = only;
                }
                "--n" => opts.seq_n = value("--n")?.parse().context("--n")?,
                "--clients" => opts.clients = value("--clients")?.parse().context("--clients")?,
                "--duration" => {
                    let secs: f64 = value("--duration")?.parse().context("--duration")?;
                    opts.duration = Duration::from_secs_f64(secs.max(0.1));
                }
                "--body-mib" => {
                    let mib: u64 = value("--body-mib")?.parse().context("--body-mib")?;
                    opts.body_bytes = mib.max(1) << 20;
                }
                "--no-upload" => opts.upload = false,
                "--sse-count" => {
                    opts.sse_count = value("--sse-count")?.parse().context("--sse-count")?;
                }
                "--cold-runs" => {
                    opts.cold_runs = value("--cold-runs")?.parse().context("--cold-runs")?;
                }
                "--repeat" => opts.repeat = value("--repeat")?.parse().context("--repeat")?,
                other => bail!("unknown argument `{other}`"),
            }
        }
        opts.seq_n = opts.seq_n.max(10);
        opts.clients = opts.clients.max(1);
        opts.sse_count = opts.sse_count.max(10);
        opts.cold_runs = opts.cold_runs.max(1);
        opts.repeat = opts.repeat.max(1);
        Ok(Some(opts))
    }

    fn wants(&self, metric: &str) -> bool {
        self.only.contains(metric)
    }
}

// ---------------------------------------------------------------------------------------------
// The baseline server (child process)

/// Serves `remote::App` over HTTP/1.1 on 127.0.0.1:<random>, prints the port on stdout, and
/// exits when stdin closes. Same runtime shape as the stub (2 workers).
fn serve_baseline(home: Option<PathBuf>) -> anyhow::Result<()> {
    use remote::handshake::HostInfo;
    let home = home
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The parent closing our stdin (or dying) ends us.
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let config = remote::Config {
            state_dir: home.join(".opencode-remote/state"),
            directory: home.clone(),
            manual: true,
            workspace_id: String::new(),
            project_id: String::new(),
        };
        let app = remote::App::new(
            config,
            HostInfo::current(home),
            remote::tools::procs::Procs::default(),
            tokio_util::sync::CancellationToken::new(),
        );
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{port}")?;
            stdout.flush()?;
        }
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ignored = stream.set_nodelay(true);
            let app = app.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        async move {
                            use http_body_util::BodyExt;
                            Ok::<_, Infallible>(
                                remote::server::handle(app, req.map(BodyExt::boxed)).await,
                            )
                        }
                    },
                );
                let _ignored = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client

type ReqBody = BoxBody<Bytes, Infallible>;

/// Where a path is reached: `127.0.0.1:PORT` plus a path prefix (the bridge's secret).
#[derive(Debug, Clone)]
struct Endpoint {
    authority: String,
    prefix: String,
}

impl Endpoint {
    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }
}

/// One keep-alive HTTP/1.1 connection (hyper client, TCP_NODELAY).
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<ReqBody>,
    authority: String,
}

impl Conn {
    async fn connect(endpoint: &Endpoint) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(&endpoint.authority)
            .await
            .with_context(|| format!("connect {}", endpoint.authority))?;
        Conn::handshake(stream, &endpoint.authority).await
    }

    async fn handshake(stream: TcpStream, authority: &str) -> anyhow::Result<Conn> {
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, ReqBody>(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ignored = connection.await;
        });
        Ok(Conn {
            sender,
            authority: authority.to_owned(),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: ReqBody,
        length: Option<u64>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority);
        if let Some(length) = length {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        let request = builder.body(body)?;
        self.sender.ready().await?;
        Ok(self.sender.send_request(request).await?)
    }

    /// GET, draining the body; returns the status and the body size.
    async fn get_drain(&mut self, path: &str) -> anyhow::Result<(StatusCode, u64)> {
        let response = self.send(Method::GET, path, empty(), None).await?;
        let status = response.status();
        let bytes = drain(response.into_body()).await?;
        Ok((status, bytes))
    }

    /// GET returning the whole body.
    async fn get_bytes(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self.send(Method::GET, path, empty(), None).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }
}

fn empty() -> ReqBody {
    Empty::<Bytes>::new().boxed()
}

async fn drain(mut body: Incoming) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok(bytes)
}

/// A request body of `remaining` zero bytes in 256 KiB frames.
struct Zeros {
    remaining: u64,
    chunk: Bytes,
}

impl hyper::body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process this benchmark started. Stopped by closing its stdin, then SIGTERM, then
/// SIGKILL, always by its own pid.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        name: &str,
        mut command: Command,
        log: PathBuf,
        piped_stdout: bool,
    ) -> anyhow::Result<Proc> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        command
            .stdin(Stdio::piped())
            .stdout(if piped_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(log_file)
            .kill_on_drop(true);
        let mut child = command.spawn().with_context(|| format!("spawn {name}"))?;
        let pid = child.id().context("child has no pid")?;
        let stdin = child.stdin.take();
        Ok(Proc {
            name: name.to_owned(),
            child,
            stdin,
            pid,
            log,
        })
    }

    /// Reads one stdout line (within `limit`).
    async fn read_line(&mut self, limit: Duration) -> anyhow::Result<String> {
        let stdout = self.child.stdout.take().context("stdout not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(limit, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => bail!(
                "{} exited without output; its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            ),
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => bail!(
                "{} gave no output within {limit:?}; log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            ),
        };
        // Keep draining so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(line)
    }

    async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_ok()
        {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ignored = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_ok()
        {
            return;
        }
        let _ignored = self.child.kill().await;
    }

    /// SIGTERM first (ssh has no stdin lifetime), then the usual.
    async fn terminate(self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ignored = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        self.stop().await;
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A bridge child and what its JSON line said.
struct BridgeProc {
    proc: Proc,
    endpoint: Endpoint,
    connect_ms: f64,
    stub_pid: Option<u32>,
}

async fn start_bridge(sshd: &Sshd, log: PathBuf, limit: Duration) -> anyhow::Result<BridgeProc> {
    let mut command = bins::local(sshd);
    command.arg("bridge").arg(bins::destination(sshd));
    let mut proc = Proc::spawn("bridge", Command::from(command), log, true)?;
    let line = proc.read_line(limit).await?;
    let info: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("bad bridge line {line:?}"))?;
    let url = info["url"].as_str().context("no url in the bridge line")?;
    let rest = url
        .strip_prefix("http://")
        .context("the bridge url is not http://")?;
    let slash = rest.find('/').context("no secret in the bridge url")?;
    let endpoint = Endpoint {
        authority: rest[..slash].to_owned(),
        prefix: rest[slash..].to_owned(),
    };
    Ok(BridgeProc {
        proc,
        endpoint,
        connect_ms: info["connectMs"].as_f64().unwrap_or(f64::NAN),
        stub_pid: info["stub"]["pid"].as_u64().map(|p| p as u32),
    })
}

fn ssh_tunnel(sshd: &Sshd, local_port: u16, server_port: u16, session: bool) -> Command {
    let mut command = std::process::Command::new("ssh");
    command
        .env("HOME", sshd.local_home())
        .env_remove("SSH_AUTH_SOCK")
        .args(sshd.ssh_base_args())
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-i",
        ])
        .arg(sshd.user_key())
        .arg("-L")
        .arg(format!("127.0.0.1:{local_port}:127.0.0.1:{server_port}"));
    if !session {
        command.arg("-N");
    }
    command.arg(sshd.destination());
    if session {
        // Ends by itself when the channel closes (no orphan, unlike `sleep 3600`).
        command.arg("exec cat >/dev/null");
    }
    Command::from(command)
}

/// Polls `endpoint` (~1 ms apart) until GET /global/health answers 200.
async fn wait_healthy(endpoint: &Endpoint, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = endpoint.path(HEALTH);
    let mut last = String::from("nothing tried");
    while started.elapsed() < limit {
        match TcpStream::connect(&endpoint.authority).await {
            Ok(stream) => match Conn::handshake(stream, &endpoint.authority).await {
                Ok(mut conn) => match conn.get_drain(&path).await {
                    Ok((StatusCode::OK, _)) => return Ok(()),
                    Ok((status, _)) => last = format!("status {status}"),
                    Err(err) => last = format!("{err:#}"),
                },
                Err(err) => last = format!("{err:#}"),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!(
        "{} not healthy within {limit:?}: {last}",
        endpoint.authority
    )
}

// ---------------------------------------------------------------------------------------------
// /proc

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `(ppid, utime + stime in ticks)` of a process.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the comm: field 3 is index 0; ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// /proc reports CPU time in USER_HZ, which is 100 on Linux.
const TICKS_PER_SEC: f64 = 100.0;

fn cpu_ticks(pid: u32) -> u64 {
    proc_stat(pid).map_or(0, |(_, ticks)| ticks)
}

/// CPU ticks of `root` and all its descendants.
fn tree_ticks(root: u32) -> u64 {
    let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ppid, ticks)) = proc_stat(pid) {
            children.entry(ppid).or_default().push((pid, ticks));
        }
    }
    let mut total = cpu_ticks(root);
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for (child, ticks) in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            total += ticks;
            stack.push(*child);
        }
    }
    total
}

/// The processes of one path whose CPU we account.
#[derive(Debug, Clone, Copy)]
struct Roles {
    /// Bridge or ssh client.
    client: Option<u32>,
    /// Stub or baseline server.
    server: u32,
    /// Whether `server` runs under sshd (the stub) and must be subtracted from the sshd tree.
    server_in_sshd: bool,
    sshd: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    client: u64,
    sshd: u64,
    server: u64,
    loadgen: u64,
    /// Busy ticks of the whole machine (/proc/stat).
    machine: u64,
}

/// Busy ticks of all CPUs: everything but idle and iowait.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is included in user).
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum()
}

impl Roles {
    fn sample(&self) -> CpuSample {
        let server = cpu_ticks(self.server);
        let tree = tree_ticks(self.sshd);
        CpuSample {
            client: self.client.map_or(0, cpu_ticks),
            sshd: if self.server_in_sshd {
                tree.saturating_sub(server)
            } else {
                tree
            },
            server,
            loadgen: cpu_ticks(std::process::id()),
            machine: machine_busy_ticks(),
        }
    }
}

/// CPU seconds between two samples: `[client, sshd, server, loadgen, other]`, where `other`
/// is what the rest of the machine used (softirq time not charged to a process, and any
/// unrelated load: a concurrent build skews every figure).
fn cpu_delta(before: CpuSample, after: CpuSample) -> [f64; 5] {
    let d = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SEC;
    let ours = [
        d(before.client, after.client),
        d(before.sshd, after.sshd),
        d(before.server, after.server),
        d(before.loadgen, after.loadgen),
    ];
    let machine = d(before.machine, after.machine);
    [
        ours[0],
        ours[1],
        ours[2],
        ours[3],
        (machine - ours.iter().sum::<f64>()).max(0.0),
    ]
}

/// Percent of one core the rest of the machine used during a measurement.
fn other_pct(before: CpuSample, after: CpuSample, elapsed: Duration) -> f64 {
    cpu_delta(before, after)[4] / elapsed.as_secs_f64().max(1e-3) * 100.0
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn median(values: &[f64]) -> f64 {
    percentile(&sorted(values.to_vec()), 0.5)
}

// ---------------------------------------------------------------------------------------------
// The measurements

struct SeqResult {
    p50_us: f64,
    p99_us: f64,
    other_pct: f64,
}

async fn measure_seq(endpoint: &Endpoint, n: usize, roles: Roles) -> anyhow::Result<SeqResult> {
    let mut conn = Conn::connect(endpoint).await?;
    let path = endpoint.path(HEALTH);
    for _ in 0..(n / 10).max(50) {
        let (status, _) = conn.get_drain(&path).await?;
        anyhow::ensure!(status == StatusCode::OK, "warm-up status {status}");
    }
    let mut latencies = Vec::with_capacity(n);
    let before = roles.sample();
    let begun = Instant::now();
    for _ in 0..n {
        let started = Instant::now();
        let (status, _) = conn.get_drain(&path).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(status == StatusCode::OK, "status {status}");
    }
    let other_pct = other_pct(before, roles.sample(), begun.elapsed());
    let latencies = sorted(latencies);
    Ok(SeqResult {
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
        other_pct,
    })
}

struct ConcResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu: [f64; 5],
    requests: usize,
}

async fn measure_conc(
    endpoint: &Endpoint,
    clients: usize,
    warm: Duration,
    duration: Duration,
    roles: Roles,
) -> anyhow::Result<ConcResult> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::connect(endpoint).await?);
    }
    let path = endpoint.path(HEALTH);
    let start = tokio::time::Instant::now();
    let measure_from = start + warm;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(clients);
    for mut conn in conns {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 14);
            loop {
                let sent = tokio::time::Instant::now();
                if sent >= end {
                    break;
                }
                let (status, _) = conn.get_drain(&path).await?;
                anyhow::ensure!(status == StatusCode::OK, "status {status}");
                let done = tokio::time::Instant::now();
                if sent >= measure_from && done <= end {
                    latencies.push((done - sent).as_secs_f64() * 1e3);
                }
            }
            Ok(latencies)
        }));
    }
    tokio::time::sleep_until(measure_from).await;
    let before = roles.sample();
    tokio::time::sleep_until(end).await;
    let after = roles.sample();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let requests = all.len();
    let all = sorted(all);
    Ok(ConcResult {
        rps: requests as f64 / duration.as_secs_f64(),
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        cpu: cpu_delta(before, after),
        requests,
    })
}

struct BodyResult {
    mib_s: f64,
    cpu: [f64; 5],
}

async fn measure_get_body(
    endpoint: &Endpoint,
    bytes: u64,
    roles: Roles,
) -> anyhow::Result<BodyResult> {
    let mut conn = Conn::connect(endpoint).await?;
    let warm = bytes.min(16 << 20);
    let (status, got) = conn
        .get_drain(&endpoint.path(&format!("{DIAG}/blob?bytes={warm}")))
        .await?;
    anyhow::ensure!(
        status == StatusCode::OK && got == warm,
        "warm-up: {status}, {got} bytes"
    );
    let path = endpoint.path(&format!("{DIAG}/blob?bytes={bytes}"));
    let before = roles.sample();
    let started = Instant::now();
    let (status, got) = conn.get_drain(&path).await?;
    let elapsed = started.elapsed();
    let after = roles.sample();
    anyhow::ensure!(status == StatusCode::OK, "status {status}");
    anyhow::ensure!(got == bytes, "got {got} of {bytes} bytes");
    Ok(BodyResult {
        mib_s: bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        cpu: cpu_delta(before, after),
    })
}

async fn upload(conn: &mut Conn, path: &str, bytes: u64) -> anyhow::Result<()> {
    let body = Zeros {
        remaining: bytes,
        chunk: Bytes::from(vec![0u8; 256 << 10]),
    }
    .boxed();
    let response = conn.send(Method::POST, path, body, Some(bytes)).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == StatusCode::OK,
        "status {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    let value: serde_json::Value = serde_json::from_slice(&answer)?;
    anyhow::ensure!(
        value["bytes"].as_u64() == Some(bytes),
        "sink answered {value}"
    );
    Ok(())
}

async fn measure_upload(
    endpoint: &Endpoint,
    bytes: u64,
    roles: Roles,
) -> anyhow::Result<BodyResult> {
    let mut conn = Conn::connect(endpoint).await?;
    let path = endpoint.path(&format!("{DIAG}/sink"));
    upload(&mut conn, &path, bytes.min(16 << 20)).await?;
    let before = roles.sample();
    let started = Instant::now();
    upload(&mut conn, &path, bytes).await?;
    let elapsed = started.elapsed();
    let after = roles.sample();
    Ok(BodyResult {
        mib_s: bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        cpu: cpu_delta(before, after),
    })
}

struct SseResult {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    events: usize,
    other_pct: f64,
}

/// Events skipped at the start of a stream (warm-up).
const SSE_SKIP: u64 = 3;

async fn measure_sse(
    endpoint: &Endpoint,
    count: u64,
    interval_ms: u64,
    roles: Roles,
) -> anyhow::Result<SseResult> {
    let mut conn = Conn::connect(endpoint).await?;
    let before = roles.sample();
    let begun = Instant::now();
    let path = endpoint.path(&format!(
        "{DIAG}/sse?interval_ms={interval_ms}&count={count}"
    ));
    let response = conn.send(Method::GET, &path, empty(), None).await?;
    anyhow::ensure!(
        response.status() == StatusCode::OK,
        "status {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    let mut delays = Vec::with_capacity(count as usize);
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let now = now_micros();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.extend_from_slice(data);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            for line in text.lines() {
                let Some(json) = line.strip_prefix("data: ") else {
                    continue;
                };
                let value: serde_json::Value =
                    serde_json::from_str(json).with_context(|| format!("bad SSE data {json:?}"))?;
                let seq = value["seq"].as_u64().context("no seq")?;
                let sent = value["t_us"].as_i64().context("no t_us")?;
                seen += 1;
                if seq >= SSE_SKIP {
                    delays.push((now - sent) as f64);
                }
            }
        }
    }
    anyhow::ensure!(seen == count, "received {seen} of {count} events");
    let other_pct = other_pct(before, roles.sample(), begun.elapsed());
    let events = delays.len();
    let delays = sorted(delays);
    Ok(SseResult {
        p50_us: percentile(&delays, 0.5),
        p99_us: percentile(&delays, 0.99),
        max_us: delays.last().copied().unwrap_or(f64::NAN),
        events,
        other_pct,
    })
}

struct ColdBridge {
    total_ms: f64,
    line_ms: f64,
    connect_ms: f64,
}

async fn cold_bridge(sshd: &Sshd, log: PathBuf) -> anyhow::Result<ColdBridge> {
    let started = Instant::now();
    let bridge = start_bridge(sshd, log, Duration::from_secs(60)).await?;
    let line_ms = started.elapsed().as_secs_f64() * 1e3;
    let result = async {
        let mut conn = Conn::connect(&bridge.endpoint).await?;
        let (status, _) = conn.get_drain(&bridge.endpoint.path(HEALTH)).await?;
        anyhow::ensure!(status == StatusCode::OK, "status {status}");
        Ok(())
    }
    .await;
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    let connect_ms = bridge.connect_ms;
    bridge.proc.stop().await;
    result?;
    Ok(ColdBridge {
        total_ms,
        line_ms,
        connect_ms,
    })
}

async fn cold_ssh(
    sshd: &Sshd,
    server_port: u16,
    session: bool,
    log: PathBuf,
) -> anyhow::Result<f64> {
    let local_port = free_port()?;
    let endpoint = Endpoint {
        authority: format!("127.0.0.1:{local_port}"),
        prefix: String::new(),
    };
    let started = Instant::now();
    let proc = Proc::spawn(
        "ssh",
        ssh_tunnel(sshd, local_port, server_port, session),
        log,
        false,
    )?;
    let result = wait_healthy(&endpoint, Duration::from_secs(30)).await;
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    proc.terminate().await;
    result?;
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Results table

const PATHS: [&str; 4] = ["bridge", "ssh_l", "ssh_l_session", "direct"];
const PATH_TITLES: [&str; 4] = ["ours", "ssh -N -L", "ssh -L +sess", "direct"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
    Neither,
}

#[derive(Debug, Clone, Copy)]
enum Goal {
    /// ours ÷ ssh -N -L at most this.
    RatioAtMost(f64),
    /// ours ÷ ssh -N -L at least this.
    RatioAtLeast(f64),
    /// ours at most this absolute value.
    AtMost(f64),
}

struct Row {
    key: String,
    title: String,
    unit: &'static str,
    decimals: usize,
    /// Every measured value per path (one per round); the median is reported.
    samples: [Vec<f64>; 4],
    errors: [Option<String>; 4],
    better: Better,
    goal: Option<Goal>,
}

impl Row {
    fn new(key: &str, title: &str, unit: &'static str, decimals: usize, better: Better) -> Row {
        Row {
            key: key.to_owned(),
            title: title.to_owned(),
            unit,
            decimals,
            samples: Default::default(),
            errors: Default::default(),
            better,
            goal: None,
        }
    }

    fn goal(mut self, goal: Goal) -> Row {
        self.goal = Some(goal);
        self
    }

    fn value(&self, path: usize) -> Option<f64> {
        let samples = &self.samples[path];
        (!samples.is_empty()).then(|| median(samples))
    }

    fn ratio(&self, against: usize) -> Option<f64> {
        match (self.value(0), self.value(against)) {
            // Differences of CPU counters can leave rounding noise (1e-16) instead of 0.
            (Some(ours), Some(theirs)) if theirs.abs() > 1e-9 && self.better != Better::Neither => {
                Some(ours / theirs)
            }
            _ => None,
        }
    }

    fn verdict(&self) -> Option<(String, bool)> {
        let goal = self.goal?;
        Some(match goal {
            Goal::RatioAtMost(limit) => {
                let ratio = self.ratio(1)?;
                (format!("≤ {limit:.1}×"), ratio <= limit)
            }
            Goal::RatioAtLeast(limit) => {
                let ratio = self.ratio(1)?;
                (format!("≥ {limit:.1}×"), ratio >= limit)
            }
            Goal::AtMost(limit) => {
                let ours = self.value(0)?;
                (format!("≤ {limit} {}", self.unit), ours <= limit)
            }
        })
    }

    fn cell(&self, index: usize) -> String {
        if self.errors[index].is_some() {
            return "ERR".to_owned();
        }
        match self.value(index) {
            Some(value) if value.is_finite() => format!("{value:.*}", self.decimals),
            Some(_) => "nan".to_owned(),
            None => "–".to_owned(),
        }
    }
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    fn push(&mut self, row: Row) -> usize {
        self.rows.push(row);
        self.rows.len() - 1
    }

    fn set(&mut self, row: usize, path: usize, value: f64) {
        self.rows[row].samples[path].push(value);
    }

    fn fail(&mut self, row: usize, path: usize, err: &anyhow::Error) {
        let message = format!("{err:#}");
        eprintln!(
            "  ERROR {} / {}: {message}",
            self.rows[row].title, PATH_TITLES[path]
        );
        self.rows[row].errors[path] = Some(message);
    }

    fn has_errors(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.errors.iter().any(Option::is_some))
    }

    fn render(&self) -> String {
        let ratio = |r: Option<f64>| r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        let mut lines: Vec<[String; 10]> = vec![[
            "metric".into(),
            "unit".into(),
            PATH_TITLES[0].into(),
            PATH_TITLES[1].into(),
            PATH_TITLES[2].into(),
            PATH_TITLES[3].into(),
            "ours÷-L".into(),
            "ours÷+sess".into(),
            "target".into(),
            "".into(),
        ]];
        for row in &self.rows {
            let (target, verdict) = match row.verdict() {
                Some((target, true)) => (target, "PASS".to_owned()),
                Some((target, false)) => (target, "MISS".to_owned()),
                None => match row.goal {
                    Some(_) => ("?".to_owned(), "n/a".to_owned()),
                    None => (String::new(), String::new()),
                },
            };
            lines.push([
                row.title.clone(),
                row.unit.to_owned(),
                row.cell(0),
                row.cell(1),
                row.cell(2),
                row.cell(3),
                ratio(row.ratio(1)),
                ratio(row.ratio(2)),
                target,
                verdict,
            ]);
        }
        let mut widths = [0usize; 10];
        for line in &lines {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for (n, line) in lines.iter().enumerate() {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i < 2 {
                    let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
                } else {
                    let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
            if n == 0 {
                let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out
    }

    fn targets(&self) -> Vec<(String, String, Option<f64>, Option<bool>)> {
        self.rows
            .iter()
            .filter(|r| r.goal.is_some())
            .map(|r| {
                let value = match r.goal {
                    Some(Goal::AtMost(_)) => r.value(0),
                    _ => r.ratio(1),
                };
                let verdict = r.verdict();
                (
                    r.title.clone(),
                    verdict
                        .as_ref()
                        .map_or_else(String::new, |(t, _)| t.clone()),
                    value,
                    verdict.map(|(_, pass)| pass),
                )
            })
            .collect()
    }

    fn json(&self, opts: &Opts, machine: serde_json::Value) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut values = serde_json::Map::new();
                let mut samples = serde_json::Map::new();
                for (i, path) in PATHS.iter().enumerate() {
                    let finite: Vec<f64> = r.samples[i]
                        .iter()
                        .copied()
                        .filter(|v| v.is_finite())
                        .collect();
                    samples.insert((*path).to_owned(), finite.into());
                    values.insert(
                        (*path).to_owned(),
                        r.value(i)
                            .filter(|v| v.is_finite())
                            .map_or(serde_json::Value::Null, serde_json::Value::from),
                    );
                }
                let errors: serde_json::Map<String, serde_json::Value> = PATHS
                    .iter()
                    .zip(&r.errors)
                    .filter_map(|(p, e)| e.as_ref().map(|e| ((*p).to_owned(), e.clone().into())))
                    .collect();
                let verdict = r.verdict();
                serde_json::json!({
                    "key": r.key,
                    "metric": r.title,
                    "unit": r.unit,
                    "values": values,
                    "samples": samples,
                    "ratio_vs_ssh_l": r.ratio(1),
                    "ratio_vs_ssh_l_session": r.ratio(2),
                    "target": verdict.as_ref().map(|(t, _)| t.clone()),
                    "pass": verdict.map(|(_, p)| p),
                    "errors": errors,
                })
            })
            .collect();
        serde_json::json!({
            "config": {
                "quick": opts.quick,
                "seq_requests": opts.seq_n,
                "clients": opts.clients,
                "duration_s": opts.duration.as_secs_f64(),
                "body_bytes": opts.body_bytes,
                "upload": opts.upload,
                "sse_count": opts.sse_count,
                "sse_interval_ms": opts.sse_interval_ms,
                "cold_runs": opts.cold_runs,
                "repeat": opts.repeat,
                "metrics": opts.only.iter().collect::<Vec<_>>(),
            },
            "machine": machine,
            "rows": rows,
            "notes": self.notes,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Setup {
    sshd: Sshd,
    logs: tempfile::TempDir,
    server: Proc,
    server_port: u16,
    bridge: BridgeProc,
    stub_pid: u32,
    tunnel: Proc,
    session: Proc,
    endpoints: [Endpoint; 4],
    roles: [Roles; 4],
    first_connect_ms: f64,
}

async fn setup() -> anyhow::Result<Setup> {
    let Some(sshd) = Sshd::start() else {
        bail!("OpenSSH server is not installed (apt-get install openssh-server)");
    };
    let sshd_pid = sshd.pid().context("sshd has no pid")?;
    let logs = tempfile::Builder::new()
        .prefix("opencode-remote-bench.")
        .tempdir()?;
    eprintln!(
        "sshd pid {sshd_pid} on 127.0.0.1:{}; logs in {}",
        sshd.port(),
        logs.path().display()
    );

    // The baseline server, "already running on the host".
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut command = Command::new(exe);
    command
        .arg(SERVE_FLAG)
        .arg(sshd.remote_home())
        .env("HOME", sshd.remote_home())
        .current_dir(sshd.remote_home());
    let mut server = Proc::spawn(
        "baseline server",
        command,
        logs.path().join("baseline.log"),
        true,
    )?;
    let server_port: u16 = server
        .read_line(Duration::from_secs(10))
        .await?
        .trim()
        .parse()
        .context("baseline server port")?;
    let direct = Endpoint {
        authority: format!("127.0.0.1:{server_port}"),
        prefix: String::new(),
    };
    wait_healthy(&direct, Duration::from_secs(10)).await?;

    // Ours (the first launch installs the stub).
    let started = Instant::now();
    let bridge = start_bridge(
        &sshd,
        logs.path().join("bridge.log"),
        Duration::from_secs(120),
    )
    .await?;
    let first_connect_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut conn = Conn::connect(&bridge.endpoint).await?;
    let (status, body) = conn.get_bytes(&bridge.endpoint.path(HEALTH)).await?;
    anyhow::ensure!(status == StatusCode::OK, "bridge health: {status}");
    let health: serde_json::Value = serde_json::from_slice(&body)?;
    let stub_pid = health["stub"]["pid"]
        .as_u64()
        .map(|p| p as u32)
        .or(bridge.stub_pid)
        .context("no stub pid in /global/health")?;
    drop(conn);

    // The predecessor: ssh -N -L, and the +session variant.
    let mut tunnels = Vec::new();
    for (session, name) in [(false, "ssh-N-L"), (true, "ssh-L-session")] {
        let local_port = free_port()?;
        let proc = Proc::spawn(
            name,
            ssh_tunnel(&sshd, local_port, server_port, session),
            logs.path().join(format!("{name}.log")),
            false,
        )?;
        let endpoint = Endpoint {
            authority: format!("127.0.0.1:{local_port}"),
            prefix: String::new(),
        };
        wait_healthy(&endpoint, Duration::from_secs(30))
            .await
            .with_context(|| format!("{name} tunnel"))?;
        tunnels.push((proc, endpoint));
    }
    let (session, session_endpoint) = tunnels.pop().context("tunnel")?;
    let (tunnel, tunnel_endpoint) = tunnels.pop().context("tunnel")?;

    let server_pid = server.pid;
    let roles = [
        Roles {
            client: Some(bridge.proc.pid),
            server: stub_pid,
            server_in_sshd: true,
            sshd: sshd_pid,
        },
        Roles {
            client: Some(tunnel.pid),
            server: server_pid,
            server_in_sshd: false,
            sshd: sshd_pid,
        },
        Roles {
            client: Some(session.pid),
            server: server_pid,
            server_in_sshd: false,
            sshd: sshd_pid,
        },
        Roles {
            client: None,
            server: server_pid,
            server_in_sshd: false,
            sshd: sshd_pid,
        },
    ];
    let endpoints = [
        bridge.endpoint.clone(),
        tunnel_endpoint,
        session_endpoint,
        direct,
    ];
    Ok(Setup {
        sshd,
        logs,
        server,
        server_port,
        bridge,
        stub_pid,
        tunnel,
        session,
        endpoints,
        roles,
        first_connect_ms,
    })
}

async fn cell<T>(
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CELL_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => bail!("timed out after {CELL_TIMEOUT:?}"),
    }
}

fn cpu_rows(
    table: &mut Table,
    prefix: &str,
    title: &str,
    unit: &'static str,
    decimals: usize,
) -> [usize; 6] {
    let roles = [
        "client (bridge/ssh)",
        "sshd",
        "server (stub/baseline)",
        "loadgen",
        "total of the above",
        "other (softirq, foreign)",
    ];
    let mut rows = [0; 6];
    for (i, role) in roles.iter().enumerate() {
        rows[i] = table.push(Row::new(
            &format!("{prefix}_cpu_{i}"),
            &format!("  {title}: {role}"),
            unit,
            decimals,
            Better::Lower,
        ));
    }
    rows
}

fn set_cpu(table: &mut Table, rows: [usize; 6], path: usize, cpu: [f64; 5], scale: f64) {
    for (i, value) in cpu[..4].iter().enumerate() {
        table.set(rows[i], path, value * scale);
    }
    table.set(rows[4], path, cpu[..4].iter().sum::<f64>() * scale);
    table.set(rows[5], path, cpu[4] * scale);
}

fn other_row(table: &mut Table, prefix: &str, title: &str) -> usize {
    table.push(Row::new(
        &format!("{prefix}_other"),
        &format!("  {title}: other CPU (softirq, foreign)"),
        "%core",
        0,
        Better::Neither,
    ))
}

fn rss_row(table: &mut Table, key: &str, title: &str, pids: [Option<u32>; 4], field: &str) {
    let row = table.push(Row::new(key, title, "MiB", 1, Better::Lower));
    for (i, pid) in pids.iter().enumerate() {
        if let Some(kib) = pid.and_then(|p| proc_status_kib(p, field)) {
            table.set(row, i, kib as f64 / 1024.0);
        }
    }
}

async fn run(opts: Opts) -> anyhow::Result<bool> {
    let started = Instant::now();
    let setup = setup().await?;
    let mut table = Table::default();
    let endpoints = setup.endpoints.clone();
    let roles = setup.roles;
    eprintln!(
        "ready in {:.1} s: bridge pid {} (stub pid {}), ssh -N -L pid {}, ssh -L +session pid {}, baseline server pid {} on :{}",
        started.elapsed().as_secs_f64(),
        setup.bridge.proc.pid,
        setup.stub_pid,
        setup.tunnel.pid,
        setup.session.pid,
        setup.server.pid,
        setup.server_port
    );

    // Idle memory first, before any load.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_pids = [
        Some(setup.stub_pid),
        Some(setup.server.pid),
        Some(setup.server.pid),
        Some(setup.server.pid),
    ];
    let client_pids = [
        Some(setup.bridge.proc.pid),
        Some(setup.tunnel.pid),
        Some(setup.session.pid),
        None,
    ];
    let idle_stub = {
        let row = table.push(
            Row::new(
                "rss_server_idle",
                "idle RSS: server (stub / baseline)",
                "MiB",
                1,
                Better::Lower,
            )
            .goal(Goal::AtMost(8.0)),
        );
        for (i, pid) in server_pids.iter().enumerate() {
            if let Some(kib) = pid.and_then(|p| proc_status_kib(p, "VmRSS")) {
                table.set(row, i, kib as f64 / 1024.0);
            }
        }
        row
    };
    rss_row(
        &mut table,
        "rss_client_idle",
        "idle RSS: client (bridge / ssh)",
        client_pids,
        "VmRSS",
    );
    let _ = idle_stub;

    // Every round measures each path once, in turn, so slow drifts hit all paths alike.
    let schedule: Vec<usize> = (0..opts.repeat).flat_map(|_| 0..4).collect();
    let rounds = if opts.repeat > 1 {
        format!(" × {} rounds", opts.repeat)
    } else {
        String::new()
    };
    if opts.wants("seq") {
        eprintln!(
            "sequential GET {HEALTH}: {} requests per path{rounds}…",
            opts.seq_n
        );
        let p50 = table.push(
            Row::new(
                "seq_p50",
                "seq GET /global/health p50",
                "µs",
                0,
                Better::Lower,
            )
            .goal(Goal::RatioAtMost(1.0)),
        );
        let p99 = table.push(Row::new(
            "seq_p99",
            "seq GET /global/health p99",
            "µs",
            0,
            Better::Lower,
        ));
        let other = other_row(&mut table, "seq", "seq");
        for &path in &schedule {
            match cell(measure_seq(&endpoints[path], opts.seq_n, roles[path])).await {
                Ok(r) => {
                    table.set(p50, path, r.p50_us);
                    table.set(p99, path, r.p99_us);
                    table.set(other, path, r.other_pct);
                }
                Err(err) => table.fail(p50, path, &err),
            }
        }
    }

    if opts.wants("conc") {
        let warm = if opts.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(1)
        };
        eprintln!(
            "{} concurrent clients for {:?} (+{warm:?} warm-up) per path{rounds}…",
            opts.clients, opts.duration
        );
        let c = opts.clients;
        let rps = table.push(
            Row::new(
                "conc_rps",
                &format!("{c} clients req/s"),
                "req/s",
                0,
                Better::Higher,
            )
            .goal(Goal::RatioAtLeast(1.5)),
        );
        let p50 = table.push(Row::new(
            "conc_p50",
            &format!("{c} clients p50"),
            "ms",
            2,
            Better::Lower,
        ));
        let p99 = table.push(Row::new(
            "conc_p99",
            &format!("{c} clients p99"),
            "ms",
            2,
            Better::Lower,
        ));
        let cpu = cpu_rows(&mut table, "conc", &format!("{c} clients CPU"), "µs/req", 1);
        for &path in &schedule {
            match cell(measure_conc(
                &endpoints[path],
                c,
                warm,
                opts.duration,
                roles[path],
            ))
            .await
            {
                Ok(r) => {
                    table.set(rps, path, r.rps);
                    table.set(p50, path, r.p50_ms);
                    table.set(p99, path, r.p99_ms);
                    set_cpu(&mut table, cpu, path, r.cpu, 1e6 / r.requests.max(1) as f64);
                }
                Err(err) => table.fail(rps, path, &err),
            }
            // Let the connections close before the next path.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let mib = opts.body_bytes >> 20;
    if opts.wants("body") {
        eprintln!("GET {mib} MiB blob per path{rounds}…");
        let row = table.push(
            Row::new(
                "body_get",
                &format!("GET {mib} MiB body"),
                "MiB/s",
                0,
                Better::Higher,
            )
            .goal(Goal::RatioAtLeast(1.0)),
        );
        let cpu = cpu_rows(
            &mut table,
            "body_get",
            &format!("GET {mib} MiB CPU"),
            "CPU-s",
            2,
        );
        for &path in &schedule {
            match cell(measure_get_body(
                &endpoints[path],
                opts.body_bytes,
                roles[path],
            ))
            .await
            {
                Ok(r) => {
                    table.set(row, path, r.mib_s);
                    set_cpu(&mut table, cpu, path, r.cpu, 1.0);
                }
                Err(err) => table.fail(row, path, &err),
            }
        }
    }

    if opts.wants("upload") && opts.upload {
        eprintln!("POST {mib} MiB to diag/sink per path{rounds}…");
        let row = table.push(Row::new(
            "body_upload",
            &format!("POST {mib} MiB body"),
            "MiB/s",
            0,
            Better::Higher,
        ));
        let cpu = cpu_rows(
            &mut table,
            "body_upload",
            &format!("POST {mib} MiB CPU"),
            "CPU-s",
            2,
        );
        for &path in &schedule {
            match cell(measure_upload(
                &endpoints[path],
                opts.body_bytes,
                roles[path],
            ))
            .await
            {
                Ok(r) => {
                    table.set(row, path, r.mib_s);
                    set_cpu(&mut table, cpu, path, r.cpu, 1.0);
                }
                Err(err) => table.fail(row, path, &err),
            }
        }
    }

    if opts.wants("sse") {
        eprintln!(
            "SSE: {} events every {} ms per path{rounds}…",
            opts.sse_count, opts.sse_interval_ms
        );
        let p50 = table.push(Row::new(
            "sse_p50",
            "SSE delivery p50",
            "µs",
            0,
            Better::Lower,
        ));
        let p99 = table.push(Row::new(
            "sse_p99",
            "SSE delivery p99",
            "µs",
            0,
            Better::Lower,
        ));
        let max = table.push(Row::new(
            "sse_max",
            "SSE delivery max",
            "µs",
            0,
            Better::Lower,
        ));
        let other = other_row(&mut table, "sse", "SSE");
        let mut events = None;
        for &path in &schedule {
            match cell(measure_sse(
                &endpoints[path],
                opts.sse_count,
                opts.sse_interval_ms,
                roles[path],
            ))
            .await
            {
                Ok(r) => {
                    table.set(p50, path, r.p50_us);
                    table.set(p99, path, r.p99_us);
                    table.set(max, path, r.max_us);
                    table.set(other, path, r.other_pct);
                    events.get_or_insert(r.events);
                }
                Err(err) => table.fail(p50, path, &err),
            }
        }
        if let Some(events) = events {
            table.notes.push(format!(
                "SSE: {events} events measured per stream (first {SSE_SKIP} skipped)"
            ));
        }
    }

    // Peak memory after the load.
    rss_row(
        &mut table,
        "rss_server_peak",
        "peak RSS (VmHWM): server",
        server_pids,
        "VmHWM",
    );
    rss_row(
        &mut table,
        "rss_client_peak",
        "peak RSS (VmHWM): client",
        client_pids,
        "VmHWM",
    );

    if opts.wants("cold") {
        let k = opts.cold_runs;
        eprintln!("cold connect: {k} runs per path (+1 warm-up)…");
        let total = table.push(
            Row::new(
                "cold_ms",
                &format!("cold connect → first 200 (median of {k})"),
                "ms",
                1,
                Better::Lower,
            )
            .goal(Goal::RatioAtMost(0.5)),
        );
        let line = table.push(Row::new(
            "cold_line_ms",
            "  bridge: spawn → URL line",
            "ms",
            1,
            Better::Neither,
        ));
        let internal = table.push(Row::new(
            "cold_connect_ms",
            "  bridge: connectMs (its own report)",
            "ms",
            1,
            Better::Neither,
        ));
        let log = setup.logs.path().join("cold.log");
        // Ours.
        let mut runs = Vec::new();
        let mut error = None;
        for run in 0..=k {
            match cell(cold_bridge(&setup.sshd, log.clone())).await {
                Ok(r) if run > 0 => runs.push(r),
                Ok(_) => {}
                Err(err) => {
                    error = Some(err);
                    break;
                }
            }
        }
        match error {
            Some(err) => table.fail(total, 0, &err),
            None => {
                table.set(
                    total,
                    0,
                    median(&runs.iter().map(|r| r.total_ms).collect::<Vec<_>>()),
                );
                table.set(
                    line,
                    0,
                    median(&runs.iter().map(|r| r.line_ms).collect::<Vec<_>>()),
                );
                table.set(
                    internal,
                    0,
                    median(&runs.iter().map(|r| r.connect_ms).collect::<Vec<_>>()),
                );
                let all: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.total_ms)).collect();
                table
                    .notes
                    .push(format!("cold connect runs, ours: {} ms", all.join(", ")));
            }
        }
        // The predecessor, with the server already running on the host.
        for (path, session) in [(1, false), (2, true)] {
            let mut runs = Vec::new();
            let mut error = None;
            for run in 0..=k {
                match cell(cold_ssh(
                    &setup.sshd,
                    setup.server_port,
                    session,
                    log.clone(),
                ))
                .await
                {
                    Ok(ms) if run > 0 => runs.push(ms),
                    Ok(_) => {}
                    Err(err) => {
                        error = Some(err);
                        break;
                    }
                }
            }
            match error {
                Some(err) => table.fail(total, path, &err),
                None => {
                    table.set(total, path, median(&runs));
                    let all: Vec<String> = runs.iter().map(|ms| format!("{ms:.1}")).collect();
                    table.notes.push(format!(
                        "cold connect runs, {}: {} ms",
                        PATH_TITLES[path],
                        all.join(", ")
                    ));
                }
            }
        }
    }

    table.notes.push(format!(
        "first bridge launch (installing the stub): {:.1} ms",
        setup.first_connect_ms
    ));
    let machine = machine_info();
    let ok = !table.has_errors();

    // Output.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nopencode-remote-bench ({}), {}",
        if opts.quick { "quick" } else { "full" },
        machine["summary"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "paths: ours = opencode-remote bridge (h1 → h2 over one SSH exec channel → stub); \
         ssh -N -L = OpenSSH port forward to the same router over HTTP/1.1 TCP (sshd keeps Nagle on); \
         ssh -L +sess = same with a remote command; direct = that server without SSH"
    );
    let _ = writeln!(out, "ratios are ours ÷ the other path\n");
    out.push_str(&table.render());
    let _ = writeln!(out, "\ntargets (ours vs ssh -N -L):");
    for (title, target, value, pass) in table.targets() {
        let value = value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
        let verdict = match pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        };
        let _ = writeln!(out, "  {verdict:4}  {title}: {value} (target {target})");
    }
    if !table.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for note in &table.notes {
            let _ = writeln!(out, "  {note}");
        }
    }
    let _ = writeln!(out, "\ntotal time {:.1} s", started.elapsed().as_secs_f64());
    {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
    if let Some(path) = &opts.json {
        let json = table.json(&opts, machine);
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }

    // Teardown: only the processes we started, by pid.
    let Setup {
        sshd,
        logs,
        server,
        bridge,
        tunnel,
        session,
        ..
    } = setup;
    bridge.proc.stop().await;
    tunnel.terminate().await;
    session.terminate().await;
    server.stop().await;
    drop(sshd);
    if ok {
        drop(logs);
    } else {
        let kept = logs.keep();
        eprintln!("logs kept in {}", kept.display());
    }
    Ok(ok)
}

fn machine_info() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let ssh = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();
    let ssh_short = ssh.split(',').next().unwrap_or("").to_owned();
    serde_json::json!({
        "cpus": cpus,
        "cpu": model,
        "kernel": kernel,
        "ssh": ssh,
        "summary": format!("{cpus} CPUs ({model}), kernel {kernel}, {ssh_short}"),
    })
}
