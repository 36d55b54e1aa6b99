//! `opencode-remote config`: manage the package-based `opencode-remote-provider` entry of the
//! user's OpenCode config (`init`, `add`, `remove`, `list`, `path`); the edits themselves are
//! [`crate::config::edit`]'s.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::config::PLUGIN_PACKAGE;
use crate::config::edit::{
    self, DEFAULT_PROVIDER, EditError, Init, NewHost, add, config_path, init, list, remove,
};

/// The `opencode-remote config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Create the OpenCode config with the plugin entry, or add the entry to an existing config
    /// (comments kept; does nothing when the entry is there).
    Init,
    /// Add a host to a provider (the provider is created when missing).
    Add {
        /// Provider name, e.g. `default`.
        #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
        provider: String,
        /// Name of the host entry; also the address SSH connects to unless --ssh-host is given.
        #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
        host: String,
        /// Login user.
        #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
        user: String,
        /// SSH port (1-65535).
        port: Option<String>,
        /// Private key file.
        #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
        identity_file: Option<String>,
        /// Address or ~/.ssh/config alias SSH connects to, when it differs from HOST.
        #[arg(long, value_name = "ADDR", value_parser = clap::builder::NonEmptyStringValueParser::new())]
        ssh_host: Option<String>,
    },
    /// Remove a host (by name or alias) from a provider.
    Remove {
        /// Provider name.
        provider: String,
        /// Host name or alias.
        host: String,
    },
    /// Show the providers, hosts, aliases, labels and SSH targets.
    List,
    /// Print the config file these commands use.
    Path,
}

/// Runs a `config` subcommand against the config of the current user: results on
/// stdout, notes (backups, warnings) on stderr.
///
/// # Errors
///
/// See [`EditError`]; nothing is changed when an error is returned.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    let home = &super::home()?;
    let path = config_path(home);
    let shown = path.display();
    let mut out = String::new();
    match command {
        ConfigCommand::Path => writeln!(out, "{shown}")?,
        ConfigCommand::List => out = list(&edit::read(&path)?, &path)?,
        ConfigCommand::Init => match init(&path)? {
            Init::Created => {
                writeln!(
                    out,
                    "Created {shown} with the {PLUGIN_PACKAGE} plugin entry (provider \
                     `{DEFAULT_PROVIDER}`, no hosts yet)."
                )?;
                writeln!(
                    out,
                    "Add a host: scripts/opencode-remote-cli.sh add {DEFAULT_PROVIDER} <host> \
                     <user> [port] [identity-file]"
                )?;
            }
            Init::Added { backup } => {
                note_backup(&backup);
                writeln!(out, "Added the {PLUGIN_PACKAGE} plugin entry to {shown}.")?;
            }
            Init::AlreadyPresent { spec } => writeln!(
                out,
                "{shown} already has the plugin entry ({spec:?}); nothing changed."
            )?,
        },
        ConfigCommand::Add {
            provider,
            host,
            user,
            port,
            identity_file,
            ssh_host,
        } => {
            check_value("host name", &host)?;
            if let Some(address) = &ssh_host {
                check_value("SSH address", address)?;
            }
            check_value("user", &user)?;
            if user.contains('@') {
                return Err(EditError::BadValue {
                    what: "user",
                    given: user,
                    why: "give the user and the host as separate arguments",
                }
                .into());
            }
            let identity_file = identity_file
                .filter(|file| !file.is_empty())
                .map(|file| absolute_identity(file, home));
            let host = NewHost {
                name: host,
                address: ssh_host,
                user,
                port: port.as_deref().map(parse_port).transpose()?,
                identity_file,
            };
            warn_if_missing(host.identity_file.as_deref(), home);
            let backup = add(&path, &provider, &host)?;
            note_backup(&backup);
            writeln!(
                out,
                "Added host `{}` ({}) to provider `{provider}` in {shown}.",
                host.name,
                host.target()
            )?;
        }
        ConfigCommand::Remove { provider, host } => {
            let (removed, backup) = remove(&path, &provider, &host)?;
            note_backup(&backup);
            let how = match &removed.alias {
                Some(alias) => format!(" (matched by its alias `{alias}`)"),
                None => String::new(),
            };
            writeln!(
                out,
                "Removed host `{}` ({}){how} from provider `{provider}` in {shown}.",
                removed.name, removed.target
            )?;
        }
    }
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `list | head` is not a failure.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result?),
    }
}

fn note_backup(backup: &Path) {
    // A note that cannot be shown (stderr closed) changes nothing about the outcome.
    let _ignored = writeln!(
        io::stderr(),
        "Saved the previous version as {}",
        backup.display()
    );
}

/// Host names, addresses and users are single words SSH can take: not empty, no spaces or
/// control characters, and no leading `-` (which ssh would read as an option).
fn check_value(what: &'static str, given: &str) -> Result<(), EditError> {
    let why = if given.is_empty() {
        "must not be empty"
    } else if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "must not contain spaces or control characters"
    } else if given.starts_with('-') {
        "must not start with `-`"
    } else {
        return Ok(());
    };
    Err(EditError::BadValue {
        what,
        given: given.to_owned(),
        why,
    })
}

/// A relative identity file is recorded as the absolute path it names now: the plugin runs
/// from whatever directory OpenCode was started in. `~/…` stays as written.
fn absolute_identity(file: String, home: &Path) -> String {
    if file.is_empty() || file == "~" || file.starts_with("~/") || Path::new(&file).is_absolute() {
        return file;
    }
    let Ok(cwd) = std::env::current_dir() else {
        return file;
    };
    let absolute = cwd.join(&file);
    let shown = match absolute.strip_prefix(home) {
        Ok(rest) => format!("~/{}", rest.display()),
        Err(_) => absolute.display().to_string(),
    };
    // Only a note, as below.
    let _ignored = writeln!(
        io::stderr(),
        "note: identity file {file} recorded as {shown}"
    );
    shown
}

fn warn_if_missing(identity_file: Option<&str>, home: &Path) {
    let Some(file) = identity_file else { return };
    let expanded = match file.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(file),
    };
    if !expanded.exists() {
        // As above: only a note.
        let _ignored = writeln!(
            io::stderr(),
            "warning: identity file {file} does not exist (yet); recording it anyway"
        );
    }
}

/// Parses a port argument.
///
/// # Errors
///
/// [`EditError::BadPort`] unless it is a number from 1 to 65535.
pub fn parse_port(given: &str) -> Result<u16, EditError> {
    match given.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(EditError::BadPort {
            given: given.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_port_should_accept_only_ports() {
        assert_eq!(parse_port("22").unwrap(), 22);
        assert_eq!(parse_port("65535").unwrap(), 65535);
        for bad in ["0", "65536", "-1", "ssh", "", "22 "] {
            assert_eq!(
                parse_port(bad).unwrap_err().to_string(),
                format!("bad port `{bad}`: must be a number from 1 to 65535")
            );
        }
    }
}
