//! Editing the package-based `opencode-remote-provider` entry of the user's OpenCode config, for
//! the `opencode-remote config` subcommands (`init`, `add`, `remove`, `list`).
//!
//! OpenCode configs are JSONC and edited by hand, so an edit keeps every byte outside the part it
//! changes. The file is parsed into jsonc-parser's lossless CST, only nodes of our plugin entry
//! (for `init`: the `plugin` array) are touched, and the tree is printed back. The CST places a
//! new item (commas, trailing commas, same-line comments); the item goes in as a placeholder
//! string that is then replaced by the item written in the file's own indentation, newline style
//! and trailing-comma habit, because the CST lays out nested values with wrong indentation next
//! to compact ancestors such as `["opencode-remote-provider", {`.
//!
//! Every result is read back with the loader the bridge uses ([`crate::config`]) before it
//! replaces the file. A change first saves `<file>.bak.<YYYYmmdd-HHMMSS>` next to the file (same
//! mode), then goes through [`crate::fsutil`] (temporary file, fsync, rename, fsync of the
//! directory), refusing to replace a file that changed since it was read: a failure at any point
//! leaves the config as it was.
//!
//! Path-based registrations (`/…/local/plugin`, `file://…`) are read-only here: `list` shows
//! them, the other commands refuse and say what to do instead.

mod document;
mod text;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::config::{ConfigError, Options, PLUGIN_PACKAGE, Source};
use crate::fsutil::{self, Staged};
use text::check_result;
pub use text::{InitText, NewHost, Removed, add_host, init_text, list, new_config, remove_host};

/// `$schema` of a config created by `init`.
pub const SCHEMA: &str = "https://opencode.ai/config.json";

/// The provider `init` creates.
pub const DEFAULT_PROVIDER: &str = "default";

const INIT_HINT: &str = "`opencode-remote config init` (scripts/opencode-remote-cli.sh init)";

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

/// The options in a parsed config value, as the bridge reads them.
fn options_from_value(value: serde_json::Value, path: &Path) -> Result<Options, ConfigError> {
    crate::config::from_value(value, &Source::OpenCodeConfig(path.to_owned()))
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

pub(crate) fn read(path: &Path) -> Result<String, EditError> {
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

/// `YYYYmmdd-HHMMSS` of `now` in `zone` (for backups: the system's zone, from `TZ` or
/// `/etc/localtime`, as `date` uses; UTC when there is none).
fn timestamp(now: SystemTime, zone: &TimeZone) -> String {
    match Timestamp::try_from(now) {
        Ok(now) => now
            .to_zoned_datetime(zone.clone())
            .strftime("%Y%m%d-%H%M%S")
            .to_string(),
        // Outside jiff's range (years -9999..=9999): not a clock anyone runs.
        Err(_) => "00000000-000000".to_owned(),
    }
}

/// Saves `contents` as `<file>.bak.<stamp>` (`.N` added when taken) with the file's mode.
fn write_backup(
    real: &Path,
    contents: &[u8],
    metadata: &fs::Metadata,
) -> Result<PathBuf, (PathBuf, io::Error)> {
    let stamp = timestamp(SystemTime::now(), &TimeZone::system());
    let mode = metadata.permissions().mode() & 0o7777;
    let mut name = real
        .file_name()
        .unwrap_or(OsStr::new("config"))
        .to_os_string();
    name.push(format!(".bak.{stamp}"));
    let dir = fsutil::parent_dir(real);
    let first = dir.join(&name);
    for attempt in 0u32..1000 {
        let candidate = if attempt == 0 {
            first.clone()
        } else {
            let mut numbered = name.clone();
            numbered.push(format!(".{attempt}"));
            dir.join(numbered)
        };
        match fsutil::write_new(&candidate, contents, mode, None) {
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
    let staged = Staged::write(real, contents, mode, Some((metadata.uid(), metadata.gid())))
        .map_err(write_error)?;
    match fs::read(real) {
        Ok(current) if current != original => Err(EditError::Concurrent {
            path: shown.to_owned(),
        }),
        Ok(_) => staged.replace(real).map_err(write_error),
        Err(source) => Err(EditError::Read {
            path: shown.to_owned(),
            source,
        }),
    }
}

/// Creates `path` with `contents` (mode 0600, directories 0700), never replacing a file that
/// appeared meanwhile.
fn create(path: &Path, contents: &[u8]) -> Result<(), EditError> {
    let dir = fsutil::parent_dir(path);
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
    let staged = Staged::write(path, contents, 0o600, None).map_err(write_error)?;
    staged.create(path).map_err(|err| match err.kind() {
        io::ErrorKind::AlreadyExists => EditError::Concurrent {
            path: path.to_owned(),
        },
        _ => write_error(err),
    })
}

#[cfg(test)]
mod tests {
    use super::text::tests::{JSON, PATH, host, options};
    use super::*;

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
    fn timestamp_should_be_the_date_and_time_in_the_zone() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(at, &TimeZone::UTC), "20231114-221320");
        let plus_two = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(timestamp(at, &plus_two), "20231115-001320");
    }

    #[test]
    fn timestamp_should_match_date() {
        // `date` formats with the C library's localtime, which the stamp used to come from.
        let date = |secs: u64, tz: Option<&str>| {
            let mut command = std::process::Command::new("date");
            command.arg(format!("-d@{secs}")).arg("+%Y%m%d-%H%M%S");
            if let Some(tz) = tz {
                command.env("TZ", tz);
            }
            let out = command.output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        // Around the 2024 DST changes in Europe and in the US.
        let instants = [
            1_700_000_000u64,
            1_711_846_799,
            1_711_846_800,
            1_730_613_600,
        ];
        for secs in instants {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            assert_eq!(
                timestamp(at, &TimeZone::system()),
                date(secs, None),
                "{secs}"
            );
            for name in ["Europe/Berlin", "America/New_York", "Asia/Kolkata"] {
                let Ok(zone) = TimeZone::get(name) else {
                    eprintln!("no time zone data for {name} here; skipping it");
                    continue;
                };
                assert_eq!(
                    timestamp(at, &zone),
                    date(secs, Some(name)),
                    "{name} {secs}"
                );
            }
        }
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
                source: io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error()),
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
