//! Running commands on a connection: exec channels, and whole commands with their output.

use russh::ChannelMsg;
use russh::client::Msg;
use tokio::io::AsyncWriteExt;

use super::{Connection, SshError};

/// Output of a finished remote command.
#[derive(Debug, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Exit status (`None` when the command died of a signal or the channel closed early).
    pub status: Option<u32>,
}

impl Output {
    /// Stderr (or stdout, when stderr is empty) for error messages, or `(no output)`.
    pub fn diagnostic(&self) -> String {
        let text = if self.stderr.is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let text = String::from_utf8_lossy(text).trim().to_owned();
        if text.is_empty() {
            "(no output)".into()
        } else {
            text
        }
    }
}

impl Connection {
    /// Opens a session channel and starts `command`, waiting for the server to confirm the exec
    /// (russh does not wait by itself, and a refused exec would otherwise look like a hang).
    ///
    /// # Errors
    ///
    /// [`SshError::Exec`] when the channel cannot be opened or the server refuses the command.
    pub async fn exec(&self, command: &str) -> Result<russh::Channel<Msg>, SshError> {
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|err| SshError::Exec(format!("cannot open a session channel: {err}")))?;
        channel
            .exec(true, command)
            .await
            .map_err(|err| SshError::Exec(format!("exec request failed: {err}")))?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(channel),
                Some(ChannelMsg::Failure) => {
                    return Err(SshError::Exec(
                        "the server refused to run the command".into(),
                    ));
                }
                None => {
                    return Err(SshError::Exec(
                        "the channel closed before the command started".into(),
                    ));
                }
                Some(_) => {}
            }
        }
    }

    /// Runs `command` to completion, feeding `stdin` (then EOF), and collects its output.
    ///
    /// # Errors
    ///
    /// [`SshError::Exec`] when it cannot be started.
    pub async fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        self.run_with_progress(command, stdin, &mut |_, _| {}).await
    }

    /// Like [`Connection::run`], reporting (bytes sent, total) while feeding `stdin`.
    ///
    /// # Errors
    ///
    /// [`SshError::Exec`] when it cannot be started.
    pub async fn run_with_progress(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Output, SshError> {
        let mut channel = self.exec(command).await?;
        if let Some(input) = stdin {
            let mut writer = channel.make_writer();
            let total = input.len() as u64;
            for (index, chunk) in input.chunks(256 << 10).enumerate() {
                writer
                    .write_all(chunk)
                    .await
                    .map_err(|err| SshError::Exec(format!("cannot send input: {err}")))?;
                progress(((index * (256 << 10)) + chunk.len()) as u64, total);
            }
            writer
                .shutdown()
                .await
                .map_err(|err| SshError::Exec(format!("cannot send input: {err}")))?;
        }
        channel
            .eof()
            .await
            .map_err(|err| SshError::Exec(format!("cannot close input: {err}")))?;
        let mut output = Output::default();
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => output.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => output.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => output.status = Some(exit_status),
                _ => {}
            }
        }
        Ok(output)
    }

    /// Whether the underlying session is closed.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Closes the session politely.
    pub async fn close(&self) {
        if let Err(err) = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "en")
            .await
        {
            tracing::debug!(%err, "disconnect failed");
        }
    }
}
