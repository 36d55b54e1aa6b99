//! Logging to `~/.opencode-remote/log/stub.log` and the channel's stderr; never stdout.
//!
//! Write errors are ignored on purpose: stderr is the SSH channel, which may already be gone
//! when we log the reason we are exiting (and `eprintln!` would panic on EPIPE).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Above this size the log is rotated to `stub.log.1` at start-up.
const ROTATE_AT: u64 = 8 << 20;

/// The environment variable holding a tracing filter, e.g. `debug` or `remote=trace`.
pub const FILTER_ENV: &str = "OPENCODE_REMOTE_LOG";

#[derive(Clone)]
struct Sink(Option<Arc<File>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(file) = &self.0 {
            // Ignored: see the module docs.
            let _ignored = (&**file).write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

/// Opens (and rotates) the log file, creating its directory with mode 0700.
///
/// # Errors
///
/// When the directory or file cannot be created.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(path, rotated)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Installs the global subscriber: `file` gets everything the filter allows (default `info`),
/// `stderr` gets warnings and errors only, to keep the channel quiet.
pub fn init(file: Option<File>, stderr: Option<File>) {
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(Sink(file.map(Arc::new)))
        .with_filter(filter);
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(Sink(stderr.map(Arc::new)))
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    // Ignored: a second init (tests) keeps the first subscriber.
    let _ignored = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
}
