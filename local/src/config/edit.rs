//! The `config` subcommands (`init`, `add`, `remove`, `list`, `path`): they manage the
//! package-based `opencode-remote-provider` entry of the user's OpenCode config.
//!
//! OpenCode configs are JSONC and edited by hand, so an edit keeps every byte outside the part it
//! changes. The file is parsed into jsonc-parser's lossless CST, only nodes of our plugin entry
//! (for `init`: the `plugin` array) are touched, and the tree is printed back. The CST places a
//! new item (commas, trailing commas, same-line comments); the item goes in as a placeholder
//! string that is then replaced by the item written in the file's own indentation, newline style
//! and trailing-comma habit, because the CST lays out nested values with wrong indentation next
//! to compact ancestors such as `["opencode-remote-provider", {`.
//!
//! Every result is read back with the loader the bridge uses ([`config`]) before it replaces the
//! file. A change first saves `<file>.bak.<YYYYmmdd-HHMMSS>` next to the file (same mode), then
//! writes a temporary file in the same directory, fsyncs it, renames it over the config and
//! fsyncs the directory: a failure at any point leaves the config as it was.
//!
//! Path-based registrations (`/…/local/plugin`, `file://…`) are read-only here: `list` shows
//! them, the other commands refuse and say what to do instead.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{
    CstArray, CstContainerNode, CstInputValue, CstNewlineKind, CstNode, CstObject, CstObjectProp,
    CstRootNode, CstStringLit,
};

use crate::config::{self, ConfigError, Host, Options, PLUGIN_PACKAGE, Source, Ssh};

/// `$schema` of a config created by `init`.
pub const SCHEMA: &str = "https://opencode.ai/config.json";

/// The provider `init` creates.
pub const DEFAULT_PROVIDER: &str = "default";

const INIT_HINT: &str = "`opencode-remote config init` (scripts/opencode-remote-cli.sh init)";

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

/// Why a `config` command failed. Each message is one line naming the file and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The config file does not exist.
    #[error("{} does not exist; create it with {INIT_HINT}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The config file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Malformed JSON, or invalid plugin options.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The document does not have the shape of an OpenCode config.
    #[error("{} is not an OpenCode config: {key} must be {expected}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Which value.
        key: String,
        /// What it must be.
        expected: &'static str,
    },
    /// No `opencode-remote-provider` entry in `plugin`.
    #[error(
        "{} has no `{PLUGIN_PACKAGE}` entry in \"plugin\"; add it with {INIT_HINT}",
        path.display()
    )]
    NoEntry {
        /// The file.
        path: PathBuf,
    },
    /// The plugin is registered by path, which this CLI does not modify.
    #[error(
        "{} registers the plugin by path ({spec:?}); this CLI only manages package-based entries: \
         edit {} by hand, or replace that entry with [\"{PLUGIN_PACKAGE}\", {{…options…}}]",
        path.display(),
        path.display()
    )]
    PathBased {
        /// The file.
        path: PathBuf,
        /// The plugin specifier.
        spec: String,
    },
    /// A host name, address or user that SSH could not use as given.
    #[error("bad {what} `{given}`: {why}")]
    BadValue {
        /// Which argument.
        what: &'static str,
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A port argument that is not a port.
    #[error("bad port `{given}`: must be a number from 1 to 65535")]
    BadPort {
        /// What was given.
        given: String,
    },
    /// `add` with a name the provider already has.
    #[error("provider `{provider}` already has a host named `{name}` ({target})")]
    DuplicateName {
        /// The provider.
        provider: String,
        /// The name.
        name: String,
        /// SSH target of the existing host.
        target: String,
    },
    /// `add` with a name that is an alias of another host.
    #[error("provider `{provider}` already has `{name}` as an alias of host `{host}` ({target})")]
    DuplicateAlias {
        /// The provider.
        provider: String,
        /// The name.
        name: String,
        /// The host that has the alias.
        host: String,
        /// Its SSH target.
        target: String,
    },
    /// `remove` with a provider that does not exist.
    #[error(
        "provider `{provider}` not found in {}; known providers: {}",
        path.display(),
        known_list(known)
    )]
    UnknownProvider {
        /// The file.
        path: PathBuf,
        /// The provider asked for.
        provider: String,
        /// The providers there are.
        known: Vec<String>,
    },
    /// `remove` with a host that the provider does not have.
    #[error(
        "host `{host}` not found in provider `{provider}`; known hosts: {}",
        known_list(known)
    )]
    UnknownHost {
        /// The provider.
        provider: String,
        /// The host asked for.
        host: String,
        /// The hosts there are, with their aliases.
        known: Vec<String>,
    },
    /// The config's directory cannot be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The backup cannot be written (the config was not touched).
    #[error("cannot back up {} to {} (the config was not changed)", path.display(), backup.display())]
    Backup {
        /// The config.
        path: PathBuf,
        /// The backup file.
        backup: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The new contents cannot be written (the config was not touched).
    #[error("cannot write {} (it was left unchanged)", path.display())]
    Write {
        /// The config.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Someone else changed the file between our read and our write.
    #[error(
        "{} changed while it was being edited, so it was left as the other writer made it; run \
         the command again",
        path.display()
    )]
    Concurrent {
        /// The config.
        path: PathBuf,
    },
    /// The edit produced a config the loader rejects (a bug; nothing was written).
    #[error("the edit would make {} invalid, so nothing was written (please report this)", path.display())]
    WouldBreak {
        /// The config.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: ConfigError,
    },
    /// The edit did not have the intended effect (a bug; nothing was written).
    #[error("editing {} went wrong ({what}), so nothing was written (please report this)", path.display())]
    Unexpected {
        /// The config.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "(none)".to_owned()
    } else {
        known.join(", ")
    }
}

/// A host for [`add`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewHost {
    /// Name of the entry.
    pub name: String,
    /// Address SSH connects to; default: `name`.
    pub address: Option<String>,
    /// Login user.
    pub user: String,
    /// Port.
    pub port: Option<u16>,
    /// Private key file.
    pub identity_file: Option<String>,
}

impl NewHost {
    fn to_input(&self) -> CstInputValue {
        let mut ssh = vec![
            (
                "host".to_owned(),
                CstInputValue::String(self.address.clone().unwrap_or_else(|| self.name.clone())),
            ),
            ("user".to_owned(), CstInputValue::String(self.user.clone())),
        ];
        if let Some(port) = self.port {
            ssh.push(("port".to_owned(), CstInputValue::Number(port.to_string())));
        }
        if let Some(file) = &self.identity_file {
            ssh.push((
                "identityFile".to_owned(),
                CstInputValue::String(file.clone()),
            ));
        }
        CstInputValue::Object(vec![
            ("name".to_owned(), CstInputValue::String(self.name.clone())),
            ("ssh".to_owned(), CstInputValue::Object(ssh)),
        ])
    }

    fn target(&self) -> String {
        ssh_target(
            &self.name,
            &Ssh {
                host: self.address.clone(),
                user: Some(self.user.clone()),
                port: self.port,
                ..Ssh::default()
            },
        )
    }
}

/// What [`init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Created the file.
    Created,
    /// Added the entry to an existing file.
    Added {
        /// The backup of the previous version.
        backup: PathBuf,
    },
    /// The entry was there already; nothing changed.
    AlreadyPresent {
        /// Its specifier.
        spec: String,
    },
}

/// What [`remove`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Canonical name of the removed host.
    pub name: String,
    /// The alias it was found by, when the argument was not its name.
    pub alias: Option<String>,
    /// Its SSH target.
    pub target: String,
}

/// The config file the commands use: `$CONFIG_FILE`, else `$OPENCODE_CONFIG` (the file OpenCode
/// and the bridge read), else `opencode.jsonc` when it exists, else `opencode.json`, in
/// `$XDG_CONFIG_HOME/opencode` (default `~/.config/opencode`).
pub fn config_path(home: &Path) -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    resolve_config_path(
        home,
        var("CONFIG_FILE").or_else(|| var("OPENCODE_CONFIG")),
        var("XDG_CONFIG_HOME"),
    )
}

fn resolve_config_path(
    home: &Path,
    explicit: Option<OsString>,
    config_home: Option<OsString>,
) -> PathBuf {
    if let Some(explicit) = explicit {
        return PathBuf::from(explicit);
    }
    let dir = config_home
        .map_or_else(|| home.join(".config"), PathBuf::from)
        .join("opencode");
    let jsonc = dir.join("opencode.jsonc");
    if jsonc.exists() {
        jsonc
    } else {
        dir.join("opencode.json")
    }
}

/// Runs a `config` subcommand against the config of the user whose home is `home`: results on
/// stdout, notes (backups, warnings) on stderr.
///
/// # Errors
///
/// See [`EditError`]; nothing is changed when an error is returned.
pub fn run(command: ConfigCommand, home: &Path) -> anyhow::Result<()> {
    let path = config_path(home);
    let shown = path.display();
    let mut out = String::new();
    match command {
        ConfigCommand::Path => writeln!(out, "{shown}")?,
        ConfigCommand::List => out = list(&read(&path)?, &path)?,
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

fn read(path: &Path) -> Result<String, EditError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => EditError::Missing {
            path: path.to_owned(),
        },
        _ => EditError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Commands on files
// ---------------------------------------------------------------------------------------------

/// Creates the config at `path` with the plugin entry, or adds the entry to an existing config.
///
/// # Errors
///
/// See [`EditError`]; a path-based registration is refused.
pub fn init(path: &Path) -> Result<Init, EditError> {
    match fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let text = new_config();
            check_result(&text, path)?;
            create(path, text.as_bytes())?;
            Ok(Init::Created)
        }
        Err(source) => Err(EditError::Read {
            path: path.to_owned(),
            source,
        }),
        Ok(_) => {
            let mut present = None;
            let backup = update(path, |text| match init_text(text, path)? {
                InitText::Changed(changed) => Ok(Some(changed)),
                InitText::Present { spec } => {
                    present = Some(spec);
                    Ok(None)
                }
            })?;
            Ok(match (backup, present) {
                (Some(backup), _) => Init::Added { backup },
                (None, spec) => Init::AlreadyPresent {
                    spec: spec.unwrap_or_default(),
                },
            })
        }
    }
}

/// Adds `host` to `provider` in the config at `path`; returns the backup's path.
///
/// # Errors
///
/// See [`EditError`]; nothing is changed on error.
pub fn add(path: &Path, provider: &str, host: &NewHost) -> Result<PathBuf, EditError> {
    let backup = update(path, |text| add_host(text, path, provider, host).map(Some))?;
    backup.ok_or_else(|| EditError::Unexpected {
        path: path.to_owned(),
        what: "nothing was added".into(),
    })
}

/// Removes `host` (name or alias) from `provider` in the config at `path`; returns what was
/// removed and the backup's path.
///
/// # Errors
///
/// See [`EditError`]; nothing is changed on error.
pub fn remove(path: &Path, provider: &str, host: &str) -> Result<(Removed, PathBuf), EditError> {
    let mut removed = None;
    let backup = update(path, |text| {
        let (changed, what) = remove_host(text, path, provider, host)?;
        removed = Some(what);
        Ok(Some(changed))
    })?;
    match (removed, backup) {
        (Some(removed), Some(backup)) => Ok((removed, backup)),
        _ => Err(EditError::Unexpected {
            path: path.to_owned(),
            what: "nothing was removed".into(),
        }),
    }
}

/// Reads the config, lets `edit` compute new contents (`None`: nothing to change) and, when
/// there are some, saves a backup and replaces the file atomically. Returns the backup's path.
fn update(
    path: &Path,
    edit: impl FnOnce(&str) -> Result<Option<String>, EditError>,
) -> Result<Option<PathBuf>, EditError> {
    // Edit the file a symlink points to (dotfile managers), not the link.
    let real = fs::canonicalize(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => EditError::Missing {
            path: path.to_owned(),
        },
        _ => EditError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    let original = read(&real)?;
    let Some(changed) = edit(&original)? else {
        return Ok(None);
    };
    let metadata = fs::metadata(&real).map_err(|source| EditError::Read {
        path: path.to_owned(),
        source,
    })?;
    let backup =
        write_backup(&real, original.as_bytes(), &metadata).map_err(|(backup, source)| {
            EditError::Backup {
                path: path.to_owned(),
                backup,
                source,
            }
        })?;
    if let Err(err) = replace(
        path,
        &real,
        changed.as_bytes(),
        &metadata,
        original.as_bytes(),
    ) {
        // The run failed as a whole: do not leave a backup of an unchanged file behind.
        if let Err(cleanup) = fs::remove_file(&backup) {
            tracing::warn!("cannot remove the backup {}: {cleanup}", backup.display());
        }
        return Err(err);
    }
    Ok(Some(backup))
}

// ---------------------------------------------------------------------------------------------
// Edits of text
// ---------------------------------------------------------------------------------------------

/// A new config: `$schema` and the plugin entry with an empty `default` provider.
pub fn new_config() -> String {
    let style = Style {
        unit: "  ".to_owned(),
        newline: "\n",
        trailing_commas: false,
    };
    let config = CstInputValue::Object(vec![
        (
            "$schema".to_owned(),
            CstInputValue::String(SCHEMA.to_owned()),
        ),
        (
            "plugin".to_owned(),
            CstInputValue::Array(vec![init_entry()]),
        ),
    ]);
    let mut text = render(&config, "", &style, true);
    text.push('\n');
    text
}

fn init_entry() -> CstInputValue {
    CstInputValue::Array(vec![
        CstInputValue::String(PLUGIN_PACKAGE.to_owned()),
        CstInputValue::Object(vec![(
            "providers".to_owned(),
            CstInputValue::Object(vec![(DEFAULT_PROVIDER.to_owned(), new_provider(None))]),
        )]),
    ])
}

fn new_provider(host: Option<CstInputValue>) -> CstInputValue {
    CstInputValue::Object(vec![
        (
            "strategy".to_owned(),
            CstInputValue::String("first_available".to_owned()),
        ),
        (
            "hosts".to_owned(),
            CstInputValue::Array(host.into_iter().collect()),
        ),
    ])
}

/// What `init` makes of existing text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitText {
    /// The text with the entry added.
    Changed(String),
    /// The entry is there already.
    Present {
        /// Its specifier.
        spec: String,
    },
}

/// `init` on existing text.
///
/// # Errors
///
/// Malformed JSON, a document that is not an object, a `plugin` that is not an array, a
/// path-based registration.
pub fn init_text(text: &str, path: &Path) -> Result<InitText, EditError> {
    let doc = Document::parse(text, path)?;
    if let Some(entry) = doc.find_entry()? {
        if config::is_path_specifier(&entry.spec) {
            return Err(doc.path_based(entry.spec));
        }
        return Ok(InitText::Present { spec: entry.spec });
    }
    let insertion = match doc.root.value() {
        None => {
            // Empty, or only comments: write a whole new config.
            let marker = doc.marker();
            doc.root.set_value(CstInputValue::String(marker.clone()));
            let config = CstInputValue::Object(vec![
                (
                    "$schema".to_owned(),
                    CstInputValue::String(SCHEMA.to_owned()),
                ),
                (
                    "plugin".to_owned(),
                    CstInputValue::Array(vec![init_entry()]),
                ),
            ]);
            Insertion {
                marker,
                value: config,
                indent: None,
                multiline: true,
            }
        }
        Some(_) => {
            let root = doc.root_object()?;
            match root.get("plugin") {
                None => doc.insert(
                    Target::Property(root, "plugin".to_owned()),
                    CstInputValue::Array(vec![init_entry()]),
                ),
                Some(prop) => match prop.array_value() {
                    Some(plugins) => doc.insert(Target::Element(plugins), init_entry()),
                    None => return Err(doc.shape("\"plugin\"", "an array")),
                },
            }
        }
    };
    let changed = doc.finish(&insertion)?;
    check_result(&changed, path)?;
    Ok(InitText::Changed(changed))
}

/// `add` on text: the new text.
///
/// # Errors
///
/// See [`EditError`].
pub fn add_host(
    text: &str,
    path: &Path,
    provider: &str,
    host: &NewHost,
) -> Result<String, EditError> {
    let doc = Document::parse(text, path)?;
    let entry = doc.package_entry()?;
    let options = doc.options()?;
    if let Some(existing) = options.providers.get(provider) {
        check_duplicate(provider, &existing.hosts, &host.name)?;
    }
    let host_value = host.to_input();
    let insertion = match doc.options_object(&entry)? {
        Some(options_object) => match options_object.get("providers") {
            None => doc.insert(
                Target::Property(options_object, "providers".to_owned()),
                CstInputValue::Object(vec![(provider.to_owned(), new_provider(Some(host_value)))]),
            ),
            Some(providers) => {
                let providers = doc.object_of(&providers, "providers")?;
                match providers.get(provider) {
                    None => doc.insert(
                        Target::Property(providers, provider.to_owned()),
                        new_provider(Some(host_value)),
                    ),
                    Some(existing) => {
                        let key = format!("providers.{provider}");
                        let existing = doc.object_of(&existing, &key)?;
                        match existing.get("hosts") {
                            None => doc.insert(
                                Target::Property(existing, "hosts".to_owned()),
                                CstInputValue::Array(vec![host_value]),
                            ),
                            Some(hosts) => {
                                let hosts = doc.array_of(&hosts, &format!("{key}.hosts"))?;
                                doc.insert(Target::Element(hosts), host_value)
                            }
                        }
                    }
                }
            }
        },
        None => {
            let options = CstInputValue::Object(vec![(
                "providers".to_owned(),
                CstInputValue::Object(vec![(provider.to_owned(), new_provider(Some(host_value)))]),
            )]);
            doc.add_options(&entry, options)
        }
    };
    let changed = doc.finish(&insertion)?;
    let result = check_result(&changed, path)?;
    let added = result
        .providers
        .get(provider)
        .and_then(|p| p.hosts.iter().find(|h| h.name == host.name));
    let expected = Ssh {
        host: Some(host.address.clone().unwrap_or_else(|| host.name.clone())),
        user: Some(host.user.clone()),
        port: host.port,
        identity_file: host.identity_file.clone(),
        proxy_jump: None,
    };
    if added.map(|h| &h.ssh) != Some(&expected) {
        return Err(EditError::Unexpected {
            path: path.to_owned(),
            what: format!("host `{}` is not in the result as given", host.name),
        });
    }
    Ok(changed)
}

fn check_duplicate(provider: &str, hosts: &[Host], name: &str) -> Result<(), EditError> {
    for host in hosts {
        let target = ssh_target(&host.name, &host.ssh);
        if host.name == name {
            return Err(EditError::DuplicateName {
                provider: provider.to_owned(),
                name: name.to_owned(),
                target,
            });
        }
        if host.aliases.iter().any(|alias| alias == name) {
            return Err(EditError::DuplicateAlias {
                provider: provider.to_owned(),
                name: name.to_owned(),
                host: host.name.clone(),
                target,
            });
        }
    }
    Ok(())
}

/// `remove` on text: the new text and what was removed.
///
/// # Errors
///
/// See [`EditError`]; unknown providers and hosts are listed in the error.
pub fn remove_host(
    text: &str,
    path: &Path,
    provider: &str,
    host: &str,
) -> Result<(String, Removed), EditError> {
    let doc = Document::parse(text, path)?;
    let entry = doc.package_entry()?;
    let options = doc.options()?;
    let Some(hosts) = options.providers.get(provider).map(|p| &p.hosts) else {
        return Err(EditError::UnknownProvider {
            path: path.to_owned(),
            provider: provider.to_owned(),
            known: options.provider_names(),
        });
    };
    let found = hosts
        .iter()
        .find(|h| h.name == host)
        .or_else(|| hosts.iter().find(|h| h.aliases.iter().any(|a| a == host)));
    let Some(found) = found else {
        return Err(EditError::UnknownHost {
            provider: provider.to_owned(),
            host: host.to_owned(),
            known: hosts
                .iter()
                .map(|h| match h.aliases.as_slice() {
                    [] => h.name.clone(),
                    aliases => format!("{} (aliases {})", h.name, aliases.join(", ")),
                })
                .collect(),
        });
    };
    let removed = Removed {
        name: found.name.clone(),
        alias: (found.name != host).then(|| host.to_owned()),
        target: ssh_target(&found.name, &found.ssh),
    };
    let not_found = || EditError::Unexpected {
        path: path.to_owned(),
        what: format!("host `{}` not found in the document", removed.name),
    };
    let options_object = doc.options_object(&entry)?.ok_or_else(not_found)?;
    let providers = options_object.get("providers").ok_or_else(not_found)?;
    let providers = doc.object_of(&providers, "providers")?;
    let key = format!("providers.{provider}");
    let provider_object = doc.object_of(&providers.get(provider).ok_or_else(not_found)?, &key)?;
    let hosts_array = provider_object.get("hosts").ok_or_else(not_found)?;
    let hosts_array = doc.array_of(&hosts_array, &format!("{key}.hosts"))?;
    let element = hosts_array
        .elements()
        .into_iter()
        .find(|element| {
            element
                .as_object()
                .and_then(|object| object.get("name"))
                .and_then(|name| name.value())
                .and_then(|value| value.as_string_lit())
                .and_then(|lit| lit.decoded_value().ok())
                .is_some_and(|name| name == removed.name)
        })
        .ok_or_else(not_found)?;
    element.remove();
    let changed = doc.root.to_string();
    let result = check_result(&changed, path)?;
    let left = result.providers.get(provider).map_or(0, |p| p.hosts.len());
    let still_there = result
        .providers
        .get(provider)
        .is_some_and(|p| p.hosts.iter().any(|h| h.name == removed.name));
    if still_there || left + 1 != hosts.len() {
        return Err(EditError::Unexpected {
            path: path.to_owned(),
            what: format!("host `{}` was not removed cleanly", removed.name),
        });
    }
    Ok((changed, removed))
}

/// `list` on text: providers, hosts, aliases, labels and SSH targets, for people.
///
/// # Errors
///
/// Malformed JSON, no plugin entry, invalid options.
pub fn list(text: &str, path: &Path) -> Result<String, EditError> {
    let doc = Document::parse(text, path)?;
    let entry = doc.find_entry()?.ok_or_else(|| EditError::NoEntry {
        path: path.to_owned(),
    })?;
    let options = doc.options()?;
    let mut lines = vec![format!("Config: {}", path.display())];
    if config::is_path_specifier(&entry.spec) {
        lines.push(format!(
            "Plugin: {:?} [read-only: path-based entry; edit the file by hand]",
            entry.spec
        ));
    } else {
        lines.push(format!("Plugin: {:?} (package-based)", entry.spec));
    }
    if options.providers.is_empty() {
        lines.push(
            "No providers yet; add a host with: add <provider> <host> <user> [port] \
             [identity-file]"
                .to_owned(),
        );
    }
    for (name, provider) in &options.providers {
        let strategy = match provider.strategy {
            Some(config::Strategy::FirstAvailable) | None => "first_available",
        };
        let labels = match provider.labels.as_slice() {
            [] => String::new(),
            labels => format!("; labels {}", labels.join(", ")),
        };
        lines.push(String::new());
        lines.push(format!("provider {name} (strategy {strategy}{labels})"));
        if provider.hosts.is_empty() {
            lines.push("  (no hosts)".to_owned());
        }
        for host in &provider.hosts {
            lines.push(format!(
                "  {}  {}",
                host.name,
                ssh_target(&host.name, &host.ssh)
            ));
            let details = [
                ("aliases", host.aliases.join(", ")),
                ("labels", host.labels.join(", ")),
                (
                    "identity",
                    host.ssh.identity_file.clone().unwrap_or_default(),
                ),
                ("proxyJump", host.ssh.proxy_jump.clone().unwrap_or_default()),
                ("directory", host.directory.clone().unwrap_or_default()),
            ];
            for (label, value) in details {
                if !value.is_empty() {
                    lines.push(format!("      {label:<10} {value}"));
                }
            }
        }
    }
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// `user@host:port`, leaving out what is not set (the host defaults to the entry's name).
fn ssh_target(name: &str, ssh: &Ssh) -> String {
    let mut target = String::new();
    if let Some(user) = &ssh.user {
        target.push_str(user);
        target.push('@');
    }
    target.push_str(ssh.host.as_deref().unwrap_or(name));
    if let Some(port) = ssh.port {
        target.push(':');
        target.push_str(&port.to_string());
    }
    target
}

/// Reads `text` back the way the bridge will, so that a bad edit is never written.
fn check_result(text: &str, path: &Path) -> Result<Options, EditError> {
    let broken = |source| EditError::WouldBreak {
        path: path.to_owned(),
        source,
    };
    let value = config::parse_jsonc(text, path).map_err(broken)?;
    let options = config::plugin_options(&value).ok_or_else(|| EditError::Unexpected {
        path: path.to_owned(),
        what: "the plugin entry is missing from the result".into(),
    })?;
    options_from_value(options, path).map_err(broken)
}

fn options_from_value(value: serde_json::Value, path: &Path) -> Result<Options, ConfigError> {
    crate::config::from_value(value, &Source::OpenCodeConfig(path.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

/// A parsed config: the CST (which must outlive every node taken from it) and its style.
struct Document<'a> {
    path: &'a Path,
    text: &'a str,
    value: serde_json::Value,
    root: CstRootNode,
    style: Style,
}

/// Our plugin entry in `plugin`.
struct Entry {
    spec: String,
    node: EntryNode,
}

enum EntryNode {
    /// `"opencode-remote-provider[@version]"`.
    Bare(CstStringLit),
    /// `["opencode-remote-provider", {options}]` (options may be missing).
    Pair(CstArray),
}

/// Where a new item goes.
enum Target {
    /// At the end of an array.
    Element(CstArray),
    /// At the end of an object, under this key.
    Property(CstObject, String),
}

/// A placeholder put into the CST, and what replaces it in the printed text.
struct Insertion {
    marker: String,
    value: CstInputValue,
    /// Indentation of the item's line, when the CST put it on a line of its own.
    indent: Option<String>,
    /// Whether to lay out the value over several lines when it sits inside a line.
    multiline: bool,
}

/// How the file is written, for the text we add.
struct Style {
    unit: String,
    newline: &'static str,
    trailing_commas: bool,
}

impl<'a> Document<'a> {
    fn parse(text: &'a str, path: &'a Path) -> Result<Self, EditError> {
        let value = config::parse_jsonc(text, path)?;
        let options = ParseOptions {
            allow_comments: true,
            allow_loose_object_property_names: false,
            allow_trailing_commas: true,
        };
        let root = CstRootNode::parse(text, &options).map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let style = Style {
            unit: root
                .single_indent_text()
                .filter(|unit| !unit.is_empty())
                .unwrap_or_else(|| "  ".to_owned()),
            newline: match root.newline_kind() {
                CstNewlineKind::CarriageReturnLineFeed => "\r\n",
                CstNewlineKind::LineFeed => "\n",
            },
            trailing_commas: root
                .object_value()
                .is_some_and(|object| object.uses_trailing_commas()),
        };
        Ok(Document {
            path,
            text,
            value,
            root,
            style,
        })
    }

    fn shape(&self, key: &str, expected: &'static str) -> EditError {
        EditError::Shape {
            path: self.path.to_owned(),
            key: key.to_owned(),
            expected,
        }
    }

    fn path_based(&self, spec: String) -> EditError {
        EditError::PathBased {
            path: self.path.to_owned(),
            spec,
        }
    }

    fn root_object(&self) -> Result<CstObject, EditError> {
        self.root
            .object_value()
            .ok_or_else(|| self.shape("the top level", "an object"))
    }

    /// The first `plugin` entry that is ours, as [`config::plugin_options`] picks it.
    fn find_entry(&self) -> Result<Option<Entry>, EditError> {
        if self.root.value().is_none() {
            return Ok(None);
        }
        let Some(plugin) = self.root_object()?.get("plugin") else {
            return Ok(None);
        };
        let plugins = plugin
            .array_value()
            .ok_or_else(|| self.shape("\"plugin\"", "an array"))?;
        let spec_of = |node: Option<&CstNode>| {
            node.and_then(CstNode::as_string_lit)
                .and_then(|lit| lit.decoded_value().ok())
                .filter(|spec| config::is_plugin_specifier(spec))
        };
        for element in plugins.elements() {
            if let Some(spec) = spec_of(Some(&element)) {
                if let Some(lit) = element.as_string_lit() {
                    return Ok(Some(Entry {
                        spec,
                        node: EntryNode::Bare(lit),
                    }));
                }
            } else if let Some(pair) = element.as_array()
                && let Some(spec) = spec_of(pair.elements().first())
            {
                return Ok(Some(Entry {
                    spec,
                    node: EntryNode::Pair(pair),
                }));
            }
        }
        Ok(None)
    }

    /// Our entry, which must exist and be package-based.
    fn package_entry(&self) -> Result<Entry, EditError> {
        let entry = self.find_entry()?.ok_or_else(|| EditError::NoEntry {
            path: self.path.to_owned(),
        })?;
        if config::is_path_specifier(&entry.spec) {
            return Err(self.path_based(entry.spec));
        }
        Ok(entry)
    }

    /// The options as the bridge reads them (validated).
    fn options(&self) -> Result<Options, EditError> {
        let value = config::plugin_options(&self.value).ok_or_else(|| EditError::NoEntry {
            path: self.path.to_owned(),
        })?;
        Ok(options_from_value(value, self.path)?)
    }

    /// The options object of a `[spec, {options}]` entry; `None` when there is none yet.
    fn options_object(&self, entry: &Entry) -> Result<Option<CstObject>, EditError> {
        match &entry.node {
            EntryNode::Bare(_) => Ok(None),
            EntryNode::Pair(pair) => match pair.elements().get(1) {
                None => Ok(None),
                Some(options) => options
                    .as_object()
                    .map(Some)
                    .ok_or_else(|| self.shape("the plugin options", "an object")),
            },
        }
    }

    fn object_of(&self, prop: &CstObjectProp, key: &str) -> Result<CstObject, EditError> {
        prop.object_value()
            .ok_or_else(|| self.shape(&format!("`{key}`"), "an object"))
    }

    fn array_of(&self, prop: &CstObjectProp, key: &str) -> Result<CstArray, EditError> {
        prop.array_value()
            .ok_or_else(|| self.shape(&format!("`{key}`"), "an array"))
    }

    /// A string the text does not contain, to stand in for a new item.
    fn marker(&self) -> String {
        (0u32..)
            .map(|n| format!("__opencode_remote_new_item_{n}__"))
            .find(|marker| !self.text.contains(marker.as_str()))
            .unwrap_or_default()
    }

    /// Gives our entry its first options object: the whole entry becomes `[spec, options]`,
    /// except for a pair with comments inside, which keeps them and gets the object appended.
    fn add_options(&self, entry: &Entry, options: CstInputValue) -> Insertion {
        let pair_with_comments = match &entry.node {
            EntryNode::Pair(pair) => pair
                .children()
                .iter()
                .any(CstNode::is_comment)
                .then(|| pair.clone()),
            EntryNode::Bare(_) => None,
        };
        if let Some(pair) = pair_with_comments {
            return self.insert(Target::Element(pair), options);
        }
        let marker = self.marker();
        let placeholder = CstInputValue::String(marker.clone());
        let plugins = match &entry.node {
            EntryNode::Bare(lit) => lit.parent(),
            EntryNode::Pair(pair) => pair.parent(),
        };
        let multiline = plugins.is_some_and(|plugins| plugins.to_string().contains('\n'));
        match &entry.node {
            EntryNode::Bare(lit) => {
                lit.clone().replace_with(placeholder);
            }
            EntryNode::Pair(pair) => {
                pair.clone().replace_with(placeholder);
            }
        }
        Insertion {
            marker,
            value: CstInputValue::Array(vec![CstInputValue::String(entry.spec.clone()), options]),
            indent: None,
            multiline,
        }
    }

    /// Puts a placeholder for `value` at the end of `target`. An empty container (nothing but
    /// whitespace inside) is replaced as a whole, so that its brackets get laid out too.
    fn insert(&self, target: Target, value: CstInputValue) -> Insertion {
        let marker = self.marker();
        let placeholder = CstInputValue::String(marker.clone());
        let container: CstContainerNode = match &target {
            Target::Element(array) => array.clone().into(),
            Target::Property(object, _) => object.clone().into(),
        };
        let blank = container.children().iter().all(|child| {
            child.is_whitespace() || child.is_newline() || child.token_char().is_some()
        });
        if blank {
            let enclosing = container.parent().and_then(|parent| match parent {
                CstContainerNode::ObjectProp(prop) => prop.parent(),
                other => Some(other),
            });
            let multiline = enclosing.is_none_or(|enclosing| {
                enclosing.is_root() || enclosing.to_string().contains('\n')
            });
            let whole = match target {
                Target::Element(array) => {
                    array.replace_with(placeholder);
                    CstInputValue::Array(vec![value])
                }
                Target::Property(object, key) => {
                    object.replace_with(placeholder);
                    CstInputValue::Object(vec![(key, value)])
                }
            };
            return Insertion {
                marker,
                value: whole,
                indent: None,
                multiline,
            };
        }
        let items: Vec<CstNode> = match &target {
            Target::Element(array) => array.elements(),
            Target::Property(object, _) => {
                object.properties().into_iter().map(Into::into).collect()
            }
        };
        let indent = match items.last().map(|last| line_at(self.text, offset_of(last))) {
            Some((indent, true)) => indent.to_owned(),
            _ => {
                let (indent, _) = line_at(self.text, offset_of(&container.clone().into()));
                format!("{indent}{}", self.style.unit)
            }
        };
        let multiline = container.to_string().contains('\n');
        match target {
            Target::Element(array) => {
                array.append(placeholder);
            }
            Target::Property(object, key) => {
                object.append(&key, placeholder);
            }
        }
        Insertion {
            marker,
            value,
            indent: Some(indent),
            multiline,
        }
    }

    /// Prints the tree and writes the inserted value in place of its placeholder.
    fn finish(&self, insertion: &Insertion) -> Result<String, EditError> {
        let text = self.root.to_string();
        let quoted = format!("\"{}\"", insertion.marker);
        let mut found = text.match_indices(&quoted).map(|(index, _)| index);
        let (Some(start), None) = (found.next(), found.next()) else {
            return Err(EditError::Unexpected {
                path: self.path.to_owned(),
                what: "the new item cannot be placed".into(),
            });
        };
        let end = start + quoted.len();
        let line_start = text[..start].rfind('\n').map_or(0, |index| index + 1);
        let before = &text[line_start..start];
        let rest = before.trim_start_matches([' ', '\t']);
        let leading = &before[..before.len() - rest.len()];
        // The CST puts a new property (`"key": "<marker>"`) or element on a line of its own
        // in multi-line containers, indented by its own guess; use ours.
        let own_line = rest.is_empty() || (rest.starts_with('"') && rest.ends_with("\": "));
        let mut changed = String::with_capacity(text.len() + 256);
        match (&insertion.indent, own_line) {
            (Some(indent), true) => {
                changed.push_str(&text[..line_start]);
                changed.push_str(indent);
                changed.push_str(rest);
                changed.push_str(&render(&insertion.value, indent, &self.style, true));
            }
            _ => {
                changed.push_str(&text[..start]);
                changed.push_str(&render(
                    &insertion.value,
                    leading,
                    &self.style,
                    insertion.multiline,
                ));
            }
        }
        changed.push_str(&text[end..]);
        Ok(changed)
    }
}

/// Byte offset of `node` in the printed document.
fn offset_of(node: &CstNode) -> usize {
    let mut offset = 0;
    let mut current = node.clone();
    while let Some(parent) = current.parent() {
        offset += current
            .previous_siblings()
            .map(|sibling| sibling.to_string().len())
            .sum::<usize>();
        current = parent.into();
    }
    offset
}

/// The indentation of the line containing `offset`, and whether only that indentation comes
/// before `offset` on the line.
fn line_at(text: &str, offset: usize) -> (&str, bool) {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
    let line = &text[start..];
    let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
    let indent = &line[..indent_len];
    (indent, start + indent_len == offset)
}

/// Writes `value` as JSON starting at a line indented by `indent`.
fn render(value: &CstInputValue, indent: &str, style: &Style, multiline: bool) -> String {
    let mut out = String::new();
    render_into(&mut out, value, indent, style, multiline);
    out
}

fn render_into(
    out: &mut String,
    value: &CstInputValue,
    indent: &str,
    style: &Style,
    multiline: bool,
) {
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let (open, close, items): (char, char, Vec<(Option<&str>, &CstInputValue)>) = match value {
        CstInputValue::Null => return out.push_str("null"),
        CstInputValue::Bool(value) => return out.push_str(if *value { "true" } else { "false" }),
        CstInputValue::Number(number) => return out.push_str(number),
        CstInputValue::String(text) => return out.push_str(&quote(text)),
        CstInputValue::Array(items) => ('[', ']', items.iter().map(|item| (None, item)).collect()),
        CstInputValue::Object(props) => (
            '{',
            '}',
            props
                .iter()
                .map(|(key, item)| (Some(key.as_str()), item))
                .collect(),
        ),
    };
    out.push(open);
    let inner = format!("{indent}{}", style.unit);
    let count = items.len();
    for (index, (key, item)) in items.into_iter().enumerate() {
        let last = index + 1 == count;
        if multiline {
            out.push_str(style.newline);
            out.push_str(&inner);
        } else if index > 0 {
            out.push(' ');
        }
        if let Some(key) = key {
            out.push_str(&quote(key));
            out.push_str(": ");
        }
        render_into(out, item, &inner, style, multiline);
        if !last || (multiline && style.trailing_commas) {
            out.push(',');
        }
    }
    if multiline && count > 0 {
        out.push_str(style.newline);
        out.push_str(indent);
    }
    out.push(close);
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// `YYYYmmdd-HHMMSS` in local time.
fn timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let time = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `libc::tm` is plain data for which all zeroes is a valid value (integers and a
    // null `tm_zone`); `localtime_r` only writes into the `tm` it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let converted = unsafe { libc::localtime_r(&time, &mut tm) };
    if converted.is_null() {
        return secs.to_string();
    }
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> &OsStr {
    path.file_name().unwrap_or(OsStr::new("config"))
}

/// Saves `contents` as `<file>.bak.<stamp>` (`.N` added when taken) with the file's mode.
fn write_backup(
    real: &Path,
    contents: &[u8],
    metadata: &fs::Metadata,
) -> Result<PathBuf, (PathBuf, io::Error)> {
    let stamp = timestamp(SystemTime::now());
    let mode = metadata.permissions().mode() & 0o7777;
    let mut name = file_name(real).to_os_string();
    name.push(format!(".bak.{stamp}"));
    let first = parent_dir(real).join(&name);
    for attempt in 0u32..1000 {
        let candidate = if attempt == 0 {
            first.clone()
        } else {
            let mut numbered = name.clone();
            numbered.push(format!(".{attempt}"));
            parent_dir(real).join(numbered)
        };
        match write_new(&candidate, contents, mode, None) {
            Ok(()) => return Ok(candidate),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err((candidate, err)),
        }
    }
    Err((
        first,
        io::Error::new(io::ErrorKind::AlreadyExists, "1000 backups in one second"),
    ))
}

/// Creates `path` (which must not exist) with `contents`, `mode` and optionally an owner, and
/// syncs it; removes it again on failure.
fn write_new(path: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let written = (|| {
        // The umask may have narrowed the mode given to open().
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            let created = file.metadata()?;
            if (created.uid(), created.gid()) != (uid, gid) {
                // Keep the owner when root edits someone else's config; as a normal user this
                // can only fail, and then the file is ours, as with any editor.
                if let Err(err) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid)) {
                    tracing::debug!("cannot keep the owner of {}: {err}", path.display());
                }
            }
        }
        file.write_all(contents)?;
        file.sync_all()
    })();
    if written.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ignored = fs::remove_file(path);
    }
    written
}

/// Writes `contents` to a new temporary file next to `real`.
fn write_temp(
    real: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<PathBuf> {
    let pid = std::process::id();
    for attempt in 0u32..100 {
        let mut name = OsString::from(".");
        name.push(file_name(real));
        name.push(format!(".{pid}.{attempt}.tmp"));
        let temp = parent_dir(real).join(name);
        match write_new(&temp, contents, mode, owner) {
            Ok(()) => return Ok(temp),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    ))
}

fn sync_dir(dir: &Path) {
    if let Err(err) = fs::File::open(dir).and_then(|dir| dir.sync_all()) {
        // The rename is done; only its durability across a crash is in question.
        tracing::warn!("cannot sync directory {}: {err}", dir.display());
    }
}

/// Replaces `real` with `contents` atomically, unless it no longer holds `original`.
fn replace(
    shown: &Path,
    real: &Path,
    contents: &[u8],
    metadata: &fs::Metadata,
    original: &[u8],
) -> Result<(), EditError> {
    let write_error = |source| EditError::Write {
        path: shown.to_owned(),
        source,
    };
    let mode = metadata.permissions().mode() & 0o7777;
    let temp = write_temp(real, contents, mode, Some((metadata.uid(), metadata.gid())))
        .map_err(write_error)?;
    let result = match fs::read(real) {
        Ok(current) if current != original => Err(EditError::Concurrent {
            path: shown.to_owned(),
        }),
        Ok(_) => fs::rename(&temp, real).map_err(write_error),
        Err(source) => Err(EditError::Read {
            path: shown.to_owned(),
            source,
        }),
    };
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ignored = fs::remove_file(&temp);
        return result;
    }
    sync_dir(parent_dir(real));
    Ok(())
}

/// Creates `path` with `contents` (mode 0600, directories 0700), never replacing a file that
/// appeared meanwhile.
fn create(path: &Path, contents: &[u8]) -> Result<(), EditError> {
    let dir = parent_dir(path);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| EditError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    let write_error = |source| EditError::Write {
        path: path.to_owned(),
        source,
    };
    let temp = write_temp(path, contents, 0o600, None).map_err(write_error)?;
    // A hard link fails when the name exists, unlike rename.
    let linked = match fs::hard_link(&temp, path) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(EditError::Concurrent {
            path: path.to_owned(),
        }),
        // Filesystems without hard links.
        Err(_) => fs::rename(&temp, path).map_err(write_error),
        Ok(()) => Ok(()),
    };
    if temp.exists() {
        // The link (or nothing) carries the contents now; the temporary name is not needed.
        let _ignored = fs::remove_file(&temp);
    }
    linked?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/home/u/.config/opencode/opencode.jsonc";

    /// A hand-written JSONC config: comments before, inside and after our entry, other plugins
    /// with options, trailing commas everywhere.
    const JSONC: &str = r#"// OpenCode config (hand-written)
{
  "$schema": "https://opencode.ai/config.json",
  /* the theme */
  "theme": "tokyonight", // dark
  "plugin": [
    "opencode-wakatime", // time tracking
    ["opencode-other", { /* other's options */ "x": 1, }],
    ["opencode-remote-provider", {
      // our providers
      "providers": {
        "staging": {
          // staging hosts
          "hosts": [
            { "name": "stage-1", "ssh": { "host": "10.1.0.1", "user": "deploy" } },
          ],
        },
        "default": {
          "strategy": "first_available",
          "hosts": [
            {
              "name": "prod-web-1",
              "aliases": ["web1"], // short
              "ssh": { "host": "203.0.113.10", "user": "ops", "port": 22 },
              "labels": ["linux", "production"],
            },
            /* db next */
            {
              "name": "db-1",
              "ssh": { "host": "203.0.113.20", "user": "ops" },
            },
          ],
        },
      },
    }],
  ],
  "model": "x/y", // trailing
}
"#;

    /// Plain JSON as `init` writes it, with one host.
    const JSON: &str = r#"{
  "$schema": "https://opencode.ai/config.json",
  "plugin": [
    [
      "opencode-remote-provider",
      {
        "providers": {
          "default": {
            "strategy": "first_available",
            "hosts": [
              {
                "name": "web-1",
                "ssh": {
                  "host": "10.0.0.1",
                  "user": "ops"
                }
              }
            ]
          }
        }
      }
    ]
  ],
  "theme": "system"
}
"#;

    fn path() -> &'static Path {
        Path::new(PATH)
    }

    fn host(name: &str) -> NewHost {
        NewHost {
            name: name.to_owned(),
            user: "me".to_owned(),
            ..NewHost::default()
        }
    }

    fn options(text: &str) -> Options {
        check_result(text, path()).unwrap()
    }

    /// `text` with `chunk` inserted right after `anchor`, which must occur once.
    fn insert_after(text: &str, anchor: &str, chunk: &str) -> String {
        assert_eq!(text.matches(anchor).count(), 1, "anchor {anchor:?}");
        text.replacen(anchor, &format!("{anchor}{chunk}"), 1)
    }

    /// `text` without `chunk`, which must occur once.
    fn without(text: &str, chunk: &str) -> String {
        assert_eq!(text.matches(chunk).count(), 1, "chunk {chunk:?}");
        text.replacen(chunk, "", 1)
    }

    #[test]
    fn config_path_should_prefer_config_file_then_jsonc_then_json() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".config/opencode");
        assert_eq!(
            resolve_config_path(home.path(), None, None),
            dir.join("opencode.json")
        );
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("opencode.jsonc"), "{}").unwrap();
        assert_eq!(
            resolve_config_path(home.path(), None, None),
            dir.join("opencode.jsonc")
        );
        assert_eq!(
            resolve_config_path(home.path(), Some("/x/c.json".into()), None),
            PathBuf::from("/x/c.json")
        );
        assert_eq!(
            resolve_config_path(home.path(), None, Some("/xdg".into())),
            PathBuf::from("/xdg/opencode/opencode.json")
        );
    }

    #[test]
    fn new_config_should_hold_the_plugin_entry_with_an_empty_default_provider() {
        let text = new_config();
        let options = options(&text);
        assert_eq!(options.providers.len(), 1);
        let provider = &options.providers[DEFAULT_PROVIDER];
        assert_eq!(provider.strategy, Some(config::Strategy::FirstAvailable));
        assert!(provider.hosts.is_empty());
        assert!(text.contains("\"$schema\": \"https://opencode.ai/config.json\""));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn init_text_should_add_the_entry_after_other_plugins_keeping_every_byte() {
        let before = "// my config\n{\n  \"theme\": \"x\", // dark\n  \"plugin\": [\n    \"a\", // first\n    [\"b\", {}],\n  ],\n}\n";
        let InitText::Changed(after) = init_text(before, path()).unwrap() else {
            panic!("nothing added");
        };
        assert_eq!(
            after,
            insert_after(
                before,
                "[\"b\", {}],",
                "\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n          \"default\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": [],\n          },\n        },\n      },\n    ],"
            )
        );
        assert!(options(&after).providers[DEFAULT_PROVIDER].hosts.is_empty());
    }

    #[test]
    fn init_text_should_create_the_plugin_array_when_missing() {
        let before = "{\n  // comment\n  \"theme\": \"x\"\n}\n";
        let InitText::Changed(after) = init_text(before, path()).unwrap() else {
            panic!("nothing added");
        };
        assert_eq!(
            after,
            "{\n  // comment\n  \"theme\": \"x\",\n  \"plugin\": [\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n          \"default\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": []\n          }\n        }\n      }\n    ]\n  ]\n}\n"
        );
    }

    #[test]
    fn init_text_should_fill_empty_and_comment_only_files() {
        for before in ["", "\n", "// nothing yet\n", "{}\n", "{\"plugin\": []}\n"] {
            let InitText::Changed(after) = init_text(before, path()).unwrap() else {
                panic!("nothing added to {before:?}");
            };
            assert!(
                options(&after).providers.contains_key(DEFAULT_PROVIDER),
                "{after}"
            );
        }
        let InitText::Changed(after) = init_text("// nothing yet\n", path()).unwrap() else {
            panic!("nothing added");
        };
        assert!(
            after.starts_with("// nothing yet\n{\n  \"$schema\""),
            "{after}"
        );
    }

    #[test]
    fn init_text_should_follow_a_single_line_plugin_array() {
        let before = "{\n  \"plugin\": [\"a\"]\n}\n";
        let InitText::Changed(after) = init_text(before, path()).unwrap() else {
            panic!("nothing added");
        };
        assert_eq!(
            after,
            insert_after(
                before,
                "\"a\"",
                ", [\"opencode-remote-provider\", {\"providers\": {\"default\": {\"strategy\": \"first_available\", \"hosts\": []}}}]"
            )
        );
    }

    #[test]
    fn init_text_should_find_an_existing_entry_in_every_form() {
        for (text, spec) in [
            (JSONC, "opencode-remote-provider"),
            (JSON, "opencode-remote-provider"),
            (
                r#"{"plugin": ["opencode-remote-provider@1.2.3"]}"#,
                "opencode-remote-provider@1.2.3",
            ),
            (
                r#"{"plugin": [["opencode-remote-provider"]]}"#,
                "opencode-remote-provider",
            ),
        ] {
            assert_eq!(
                init_text(text, path()).unwrap(),
                InitText::Present {
                    spec: spec.to_owned()
                }
            );
        }
    }

    #[test]
    fn edits_should_refuse_path_based_entries() {
        let text = r#"{"plugin": [["/src/opencode-remote/local/plugin", {"providers": {}}]]}"#;
        let expect = |err: EditError| {
            let message = err.to_string();
            assert!(matches!(err, EditError::PathBased { .. }), "{message}");
            assert!(
                message.contains("/src/opencode-remote/local/plugin"),
                "{message}"
            );
            assert!(message.contains("edit /home/u/.config/opencode/opencode.jsonc by hand"));
            assert!(message.contains("[\"opencode-remote-provider\", {…options…}]"));
        };
        expect(init_text(text, path()).unwrap_err());
        expect(add_host(text, path(), "p", &host("h")).unwrap_err());
        expect(remove_host(text, path(), "p", "h").unwrap_err());
        let file_url = r#"{"plugin": ["file:///src/opencode-remote/local/plugin/index.js"]}"#;
        expect(add_host(file_url, path(), "p", &host("h")).unwrap_err());
    }

    #[test]
    fn init_text_should_refuse_a_plugin_value_that_is_not_an_array() {
        let err = init_text(r#"{"plugin": "x"}"#, path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{PATH} is not an OpenCode config: \"plugin\" must be an array")
        );
        let err = init_text("[1]", path()).unwrap_err();
        assert!(err.to_string().contains("the top level must be an object"));
    }

    #[test]
    fn add_host_should_append_to_a_jsonc_provider_keeping_every_other_byte() {
        let new = NewHost {
            name: "web-2".into(),
            address: Some("10.0.0.2".into()),
            user: "ops".into(),
            port: Some(2222),
            identity_file: Some("~/.ssh/id_ed25519".into()),
        };
        let after = add_host(JSONC, path(), "default", &new).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSONC,
                "\"203.0.113.20\", \"user\": \"ops\" },\n            },",
                "
            {
              \"name\": \"web-2\",
              \"ssh\": {
                \"host\": \"10.0.0.2\",
                \"user\": \"ops\",
                \"port\": 2222,
                \"identityFile\": \"~/.ssh/id_ed25519\",
              },
            },"
            )
        );
        let hosts = &options(&after).providers["default"].hosts;
        assert_eq!(hosts.len(), 3);
        assert_eq!(
            hosts[2].ssh.identity_file.as_deref(),
            Some("~/.ssh/id_ed25519")
        );
    }

    #[test]
    fn add_host_should_append_to_a_json_provider_keeping_every_other_byte() {
        let after = add_host(JSON, path(), "default", &host("web-2")).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSON,
                "\"user\": \"ops\"\n                }\n              }",
                ",
              {
                \"name\": \"web-2\",
                \"ssh\": {
                  \"host\": \"web-2\",
                  \"user\": \"me\"
                }
              }"
            )
        );
        // Plain JSON stays plain JSON.
        assert!(serde_json::from_str::<serde_json::Value>(&after).is_ok());
    }

    #[test]
    fn add_host_should_create_a_missing_provider() {
        let after = add_host(JSON, path(), "lab", &host("box")).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSON,
                "\"user\": \"ops\"\n                }\n              }\n            ]\n          }",
                ",
          \"lab\": {
            \"strategy\": \"first_available\",
            \"hosts\": [
              {
                \"name\": \"box\",
                \"ssh\": {
                  \"host\": \"box\",
                  \"user\": \"me\"
                }
              }
            ]
          }"
            )
        );
        let after = add_host(JSONC, path(), "lab", &host("box")).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSONC,
                "\"203.0.113.20\", \"user\": \"ops\" },\n            },\n          ],\n        },",
                "
        \"lab\": {
          \"strategy\": \"first_available\",
          \"hosts\": [
            {
              \"name\": \"box\",
              \"ssh\": {
                \"host\": \"box\",
                \"user\": \"me\",
              },
            },
          ],
        },"
            )
        );
    }

    #[test]
    fn add_host_should_fill_empty_hosts_providers_and_options() {
        let readme_style = "{\n  \"plugin\": [\n    [\"opencode-remote-provider\", {\n      \"providers\": {}\n    }]\n  ]\n}\n";
        let after = add_host(readme_style, path(), "default", &host("h")).unwrap();
        assert_eq!(
            after,
            "{\n  \"plugin\": [\n    [\"opencode-remote-provider\", {\n      \"providers\": {\n        \"default\": {\n          \"strategy\": \"first_available\",\n          \"hosts\": [\n            {\n              \"name\": \"h\",\n              \"ssh\": {\n                \"host\": \"h\",\n                \"user\": \"me\"\n              }\n            }\n          ]\n        }\n      }\n    }]\n  ]\n}\n"
        );
        let empty_hosts = new_config();
        let after = add_host(&empty_hosts, path(), DEFAULT_PROVIDER, &host("h")).unwrap();
        assert_eq!(
            after,
            empty_hosts.replace(
                "\"hosts\": []",
                "\"hosts\": [\n              {\n                \"name\": \"h\",\n                \"ssh\": {\n                  \"host\": \"h\",\n                  \"user\": \"me\"\n                }\n              }\n            ]"
            )
        );
        let no_options = "{\n  \"plugin\": [\n    [\"opencode-remote-provider\"]\n  ]\n}\n";
        let after = add_host(no_options, path(), "p", &host("h")).unwrap();
        assert_eq!(options(&after).providers["p"].hosts[0].name, "h");
        assert!(after.starts_with("{\n  \"plugin\": [\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n"), "{after}");
    }

    #[test]
    fn add_host_should_give_a_bare_entry_its_options() {
        let before = "{\n  \"plugin\": [\n    \"a\",\n    \"opencode-remote-provider@0.1.0\", // ours\n    \"b\"\n  ]\n}\n";
        let after = add_host(before, path(), "p", &host("h")).unwrap();
        assert_eq!(
            after,
            "{\n  \"plugin\": [\n    \"a\",\n    [\n      \"opencode-remote-provider@0.1.0\",\n      {\n        \"providers\": {\n          \"p\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": [\n              {\n                \"name\": \"h\",\n                \"ssh\": {\n                  \"host\": \"h\",\n                  \"user\": \"me\"\n                }\n              }\n            ]\n          }\n        }\n      }\n    ], // ours\n    \"b\"\n  ]\n}\n"
        );
    }

    #[test]
    fn add_host_should_keep_tabs_and_crlf() {
        let tabs = "{\n\t\"plugin\": [\n\t\t[\"opencode-remote-provider\", {\"providers\": {\"p\": {\"hosts\": [\n\t\t\t{\"name\": \"a\"}\n\t\t]}}}]\n\t]\n}\n";
        let after = add_host(tabs, path(), "p", &host("b")).unwrap();
        assert_eq!(
            after,
            insert_after(
                tabs,
                "{\"name\": \"a\"}",
                ",\n\t\t\t{\n\t\t\t\t\"name\": \"b\",\n\t\t\t\t\"ssh\": {\n\t\t\t\t\t\"host\": \"b\",\n\t\t\t\t\t\"user\": \"me\"\n\t\t\t\t}\n\t\t\t}"
            )
        );
        let crlf = JSON.replace('\n', "\r\n");
        let after = add_host(&crlf, path(), "default", &host("b")).unwrap();
        let lf = add_host(JSON, path(), "default", &host("b")).unwrap();
        assert_eq!(after, lf.replace('\n', "\r\n"));
    }

    #[test]
    fn add_host_should_follow_single_line_host_arrays() {
        let before = r#"{"plugin": [["opencode-remote-provider", {"providers": {"p": {"hosts": [{"name": "a"}]}}}]]}"#;
        let after = add_host(before, path(), "p", &host("b")).unwrap();
        assert_eq!(
            after,
            insert_after(
                before,
                r#"{"name": "a"}"#,
                r#", {"name": "b", "ssh": {"host": "b", "user": "me"}}"#
            )
        );
    }

    #[test]
    fn add_host_should_keep_a_comment_after_the_last_host() {
        let before = "{\"plugin\": [[\"opencode-remote-provider\", {\"providers\": {\"p\": {\"hosts\": [\n  {\"name\": \"a\"} // first\n]}}}]]}";
        let after = add_host(before, path(), "p", &host("b")).unwrap();
        assert!(
            after.contains("{\"name\": \"a\"}, // first\n  {\n    \"name\": \"b\""),
            "{after}"
        );
    }

    #[test]
    fn add_host_should_refuse_duplicate_names_and_aliases() {
        let err = add_host(JSONC, path(), "default", &host("db-1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider `default` already has a host named `db-1` (ops@203.0.113.20)"
        );
        let err = add_host(JSONC, path(), "default", &host("web1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider `default` already has `web1` as an alias of host `prod-web-1` (ops@203.0.113.10:22)"
        );
        // Other providers may use the name.
        assert!(add_host(JSONC, path(), "staging", &host("db-1")).is_ok());
    }

    #[test]
    fn add_host_should_explain_a_missing_entry_and_invalid_options() {
        let err = add_host(r#"{"plugin": ["x"]}"#, path(), "p", &host("h")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{PATH} has no `opencode-remote-provider` entry in \"plugin\"; add it with \
                 `opencode-remote config init` (scripts/opencode-remote-cli.sh init)"
            )
        );
        let typo = r#"{"plugin": [["opencode-remote-provider", {"providers": {"p": {"hosts": [{"name": "a", "ssh": {"prot": 1}}]}}}]]}"#;
        let err = add_host(typo, path(), "p", &host("h"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.p.hosts[0].ssh.prot"), "{err}");
    }

    #[test]
    fn parse_should_report_malformed_json_with_line_and_column() {
        let err = add_host(
            "{\n  \"plugin\": [\n    \"x\",\n    }\n  ]\n}",
            path(),
            "p",
            &host("h"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(&format!("config {PATH} is not valid JSON")),
            "{err}"
        );
        assert!(err.contains("line 4 column 5"), "{err}");
    }

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

    #[test]
    fn remove_host_should_remove_by_name_keeping_every_other_byte() {
        let (after, removed) = remove_host(JSONC, path(), "default", "prod-web-1").unwrap();
        assert_eq!(
            after,
            without(
                JSONC,
                "            {
              \"name\": \"prod-web-1\",
              \"aliases\": [\"web1\"], // short
              \"ssh\": { \"host\": \"203.0.113.10\", \"user\": \"ops\", \"port\": 22 },
              \"labels\": [\"linux\", \"production\"],
            },
"
            )
        );
        assert_eq!(
            removed,
            Removed {
                name: "prod-web-1".into(),
                alias: None,
                target: "ops@203.0.113.10:22".into()
            }
        );
        let hosts = &options(&after).providers["default"].hosts;
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].name, "db-1");
    }

    #[test]
    fn remove_host_should_remove_the_last_host_and_its_comma() {
        let (after, _) = remove_host(JSON, path(), "default", "web-1").unwrap();
        assert_eq!(after, JSON.replace("[\n              {\n                \"name\": \"web-1\",\n                \"ssh\": {\n                  \"host\": \"10.0.0.1\",\n                  \"user\": \"ops\"\n                }\n              }\n            ]", "[]"));
        let (after, _) = remove_host(JSONC, path(), "default", "db-1").unwrap();
        assert!(after.contains("\"labels\": [\"linux\", \"production\"],\n            },\n            /* db next */\n          ],"), "{after}");
    }

    #[test]
    fn remove_host_should_accept_an_alias() {
        let (after, removed) = remove_host(JSONC, path(), "default", "web1").unwrap();
        assert_eq!(removed.name, "prod-web-1");
        assert_eq!(removed.alias.as_deref(), Some("web1"));
        assert_eq!(
            after,
            remove_host(JSONC, path(), "default", "prod-web-1")
                .unwrap()
                .0
        );
    }

    #[test]
    fn remove_host_should_list_the_known_providers_and_hosts() {
        let err = remove_host(JSONC, path(), "prod", "db-1").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("provider `prod` not found in {PATH}; known providers: default, staging")
        );
        let err = remove_host(JSONC, path(), "default", "web-9").unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `web-9` not found in provider `default`; known hosts: prod-web-1 (aliases web1), db-1"
        );
        let err = remove_host(&new_config(), path(), "default", "x").unwrap_err();
        assert!(err.to_string().ends_with("known hosts: (none)"), "{err}");
    }

    #[test]
    fn list_should_show_providers_hosts_and_targets() {
        let text = JSONC.replace(
            "\"labels\": [\"linux\", \"production\"],",
            "\"labels\": [\"linux\", \"production\"], \"directory\": \"/srv/app\",",
        );
        let text = text.replace(
            "\"user\": \"ops\" },",
            "\"user\": \"ops\", \"proxyJump\": \"bastion\", \"identityFile\": \"~/.ssh/db\" },",
        );
        assert_eq!(
            list(&text, path()).unwrap(),
            format!(
                "Config: {PATH}
Plugin: \"opencode-remote-provider\" (package-based)

provider default (strategy first_available)
  prod-web-1  ops@203.0.113.10:22
      aliases    web1
      labels     linux, production
      directory  /srv/app
  db-1  ops@203.0.113.20
      identity   ~/.ssh/db
      proxyJump  bastion

provider staging (strategy first_available)
  stage-1  deploy@10.1.0.1
"
            )
        );
    }

    #[test]
    fn list_should_mark_path_based_entries_read_only() {
        let text = r#"{"plugin": [["/src/opencode-remote/local/plugin", {"providers": {"p": {"labels": ["x"], "hosts": []}}}]]}"#;
        let out = list(text, path()).unwrap();
        assert!(
            out.contains(
                "Plugin: \"/src/opencode-remote/local/plugin\" [read-only: path-based entry; edit the file by hand]"
            ),
            "{out}"
        );
        assert!(
            out.contains("provider p (strategy first_available; labels x)\n  (no hosts)"),
            "{out}"
        );
        let out = list(r#"{"plugin": ["opencode-remote-provider"]}"#, path()).unwrap();
        assert!(out.contains("No providers yet"), "{out}");
    }

    #[test]
    fn timestamp_should_be_a_local_date_and_time() {
        let stamp = timestamp(SystemTime::now());
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert!(stamp.chars().enumerate().all(|(index, c)| if index == 8 {
            c == '-'
        } else {
            c.is_ascii_digit()
        }));
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn init_should_create_a_private_file_in_private_directories() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("a/b/opencode.json");
        assert_eq!(init(&path).unwrap(), Init::Created);
        assert_eq!(fs::read_to_string(&path).unwrap(), new_config());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&home.path().join("a/b")), 0o700);
        assert_eq!(mode(&home.path().join("a")), 0o700);
        assert_eq!(
            init(&path).unwrap(),
            Init::AlreadyPresent {
                spec: PLUGIN_PACKAGE.into()
            }
        );
        assert_eq!(entries(&home.path().join("a/b")), ["opencode.json"]);
    }

    #[test]
    fn add_should_back_up_the_previous_version_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opencode.json");
        fs::write(&path, JSON).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let first = add(&path, "default", &host("a")).unwrap();
        let second = add(&path, "default", &host("b")).unwrap();
        assert_eq!(fs::read_to_string(&first).unwrap(), JSON);
        assert_eq!(
            fs::read_to_string(&second).unwrap(),
            add_host(JSON, &path, "default", &host("a")).unwrap()
        );
        for file in [&path, &first, &second] {
            let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640, "{}", file.display());
        }
        let name = first.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("opencode.json.bak."), "{name}");
        assert_eq!(entries(dir.path()).len(), 3, "{:?}", entries(dir.path()));
    }

    #[test]
    fn write_backup_should_number_a_name_that_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        fs::write(&path, "{}").unwrap();
        let metadata = fs::metadata(&path).unwrap();
        let names: Vec<String> = (0..3)
            .map(|_| {
                let backup = write_backup(&path, b"{}", &metadata).unwrap();
                backup.file_name().unwrap().to_string_lossy().into_owned()
            })
            .collect();
        // Within one second (or across a second boundary: then the first of a new stamp).
        let stamp = names[0].trim_start_matches("c.json.bak.");
        if names.iter().all(|name| name.contains(stamp)) {
            assert_eq!(
                names,
                [
                    format!("c.json.bak.{stamp}"),
                    format!("c.json.bak.{stamp}.1"),
                    format!("c.json.bak.{stamp}.2")
                ]
            );
        }
    }

    #[test]
    fn update_should_leave_everything_as_it_was_when_the_file_changes_underneath() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opencode.json");
        fs::write(&path, JSON).unwrap();
        let err = update(&path, |text| {
            fs::write(&path, "{\"other\": \"writer\"}").unwrap();
            Ok(Some(format!("{text} ")))
        })
        .unwrap_err();
        assert!(matches!(err, EditError::Concurrent { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"other\": \"writer\"}"
        );
        assert_eq!(entries(dir.path()), ["opencode.json"]);
    }

    #[test]
    fn update_should_leave_everything_as_it_was_when_the_rename_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opencode.json");
        fs::write(&path, JSON).unwrap();
        // Renaming a file over a directory fails; this directory shows up in the middle of
        // the update, after the backup.
        let err = update(&path, |text| Ok(Some(text.to_owned())))
            .map(|_| ())
            .and_then(|()| {
                let real = fs::canonicalize(&path).unwrap();
                fs::remove_file(&real).unwrap();
                fs::create_dir(&real).unwrap();
                replace(&path, &real, b"{}", &fs::metadata(dir.path()).unwrap(), b"")
            })
            .unwrap_err();
        assert!(
            matches!(err, EditError::Read { .. } | EditError::Write { .. }),
            "{err}"
        );
        let left: Vec<String> = entries(dir.path())
            .into_iter()
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn update_should_edit_the_target_of_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles.json");
        fs::write(&real, JSON).unwrap();
        let link = dir.path().join("opencode.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        add(&link, "default", &host("b")).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            options(&fs::read_to_string(&real).unwrap()).providers["default"]
                .hosts
                .len(),
            2
        );
    }

    #[test]
    fn errors_should_read_as_one_line() {
        let errors = [
            EditError::Missing { path: PATH.into() },
            EditError::PathBased {
                path: PATH.into(),
                spec: "/x/local/plugin".into(),
            },
            EditError::Write {
                path: PATH.into(),
                source: io::Error::from_raw_os_error(libc::ENOSPC),
            },
        ];
        assert_eq!(
            errors[0].to_string(),
            format!(
                "{PATH} does not exist; create it with `opencode-remote config init` \
                 (scripts/opencode-remote-cli.sh init)"
            )
        );
        assert_eq!(
            format!(
                "{:#}",
                anyhow::Error::from(errors.into_iter().nth(2).unwrap())
            ),
            format!(
                "cannot write {PATH} (it was left unchanged): No space left on device (os error 28)"
            )
        );
        for err in [
            EditError::Shape {
                path: PATH.into(),
                key: "\"plugin\"".into(),
                expected: "an array",
            },
            EditError::Concurrent { path: PATH.into() },
        ] {
            assert!(!err.to_string().contains('\n'));
        }
    }
}
