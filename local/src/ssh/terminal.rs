//! Questions to the person at the terminal (`/dev/tty`): host key confirmation and passwords.
//!
//! Prompts go to the terminal itself, never to stdout (which carries machine-readable output)
//! and never through argv or logs. Passwords are read with echo off. `sshpass -e` can answer the
//! password prompt: it looks for "assword" on the terminal it provides.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};

use rustix::termios::{self, LocalModes, OptionalActions};

/// Whether a person (or `sshpass`) can be asked: the process has a controlling terminal. Only
/// the commands people run call this; the bridge the plugin starts never prompts.
pub fn is_interactive() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

fn tty() -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

fn read_line(tty: &File) -> std::io::Result<String> {
    let mut line = String::new();
    BufReader::new(tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks a yes/no question; only an explicit `yes` counts (like OpenSSH).
///
/// # Errors
///
/// When the terminal cannot be used.
pub fn confirm(question: &str) -> std::io::Result<bool> {
    let mut tty = tty()?;
    loop {
        write!(tty, "{question} (yes/no): ")?;
        tty.flush()?;
        match read_line(&tty)?.trim().to_ascii_lowercase().as_str() {
            "yes" => return Ok(true),
            "no" | "" => return Ok(false),
            _ => writeln!(tty, "Please type 'yes' or 'no'.")?,
        }
    }
}

/// Shows `text` (a server's message) on its own line.
///
/// # Errors
///
/// When the terminal cannot be used.
pub fn say(text: &str) -> std::io::Result<()> {
    let mut tty = tty()?;
    writeln!(tty, "{text}")?;
    tty.flush()
}

/// Reads an answer with echo on (a prompt the server marked as not secret).
///
/// # Errors
///
/// When the terminal cannot be used.
pub fn line(prompt: &str) -> std::io::Result<String> {
    let mut tty = tty()?;
    write!(tty, "{prompt}")?;
    tty.flush()?;
    read_line(&tty)
}

/// Reads a password with echo off.
///
/// # Errors
///
/// When the terminal cannot be used.
pub fn password(prompt: &str) -> std::io::Result<String> {
    let mut tty = tty()?;
    // Echo off before the prompt appears: whoever answers (a person, or sshpass reacting to the
    // prompt at once) must not type into a terminal that is still echoing, and changing modes
    // after the prompt with TCSAFLUSH would throw away an answer that already arrived.
    let saved = termios::tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    termios::tcsetattr(&tty, OptionalActions::Now, &quiet)?;
    let line = write!(tty, "{prompt}")
        .and_then(|()| tty.flush())
        .and_then(|()| read_line(&tty));
    // Restore echo whatever happened.
    let restored = termios::tcsetattr(&tty, OptionalActions::Now, &saved);
    let line = line?;
    restored?;
    Ok(line)
}
