//! OpenSSH `known_hosts` verification and recording.
//!
//! This is our own reader of the `sshd(8)` "SSH_KNOWN_HOSTS FILE FORMAT":
//!
//! * blank lines and `#` comments are skipped, as are lines that cannot be
//!   parsed (unknown marker, unsupported key type, bad base64...);
//! * a line is `[@cert-authority|@revoked] hosts keytype base64 [comment]`;
//! * `hosts` is a comma-separated list of patterns with `*`, `?` and `!`
//!   negation (a matching negated pattern makes the line not apply), compared
//!   case-insensitively; non-22 ports are written `[host]:port`, and for port 22
//!   both `host` and `[host]:22` match;
//! * a hashed `hosts` field `|1|salt|hmac` holds HMAC-SHA1(salt, name) of the
//!   name produced by [`host_entry_name`].
//!
//! [`verify`] follows OpenSSH's decision for a plain host key across all files
//! (user files first, then global ones): a `@revoked` line with the key wins
//! over everything (whatever its host patterns), then the first line for the
//! host with the same key makes it [`Verdict::Trusted`], then the first line
//! for the host with the same key type but other data makes it
//! [`Verdict::Changed`]. [`verify_certificate`] handles `@cert-authority`
//! lines for host certificates.
//!
//! A missing file holds no entries; a file that exists but cannot be read is
//! an error naming it. The `CheckHostIP` address lookup is not performed.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use hmac::{Hmac, Mac};
use russh::keys::{
    Certificate, HashAlg, PublicKey,
    ssh_key::{Fingerprint, certificate::CertType, public::KeyData},
};
use sha1::Sha1;

use crate::fsutil;
use crate::ssh::ssh_config::{ListMatch, match_pattern_list};

/// Base64 that accepts both padded and unpadded input.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Prefix of a hashed host name field.
const HASH_MAGIC: &str = "|1|";

/// Length of the random salt of a hashed entry (the SHA-1 output size).
const HASH_SALT_LEN: usize = 20;

/// The outcome of looking a host key up in known_hosts files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds this very key (for certificates: the line of
    /// the `@cert-authority` key that signed a valid host certificate).
    Trusted {
        /// File holding the line.
        file: PathBuf,
        /// One-based line number.
        line: usize,
    },
    /// No line applies to this host.
    Unknown,
    /// Lines exist for this host, but only for other key types; OpenSSH asks
    /// about such a key like an unknown one, mentioning the known types.
    UnknownWithOtherTypes {
        /// File of the first such line.
        file: PathBuf,
        /// One-based line number of the first such line.
        line: usize,
        /// The key types known for this host, in file order, without repeats.
        known_types: Vec<String>,
    },
    /// A line for this host holds a different key of the same type: possible
    /// man-in-the-middle attack.
    Changed {
        /// File of the first such line.
        file: PathBuf,
        /// One-based line number of the first such line.
        line: usize,
        /// Key type of that line (e.g. `ssh-ed25519`).
        known_type: String,
    },
    /// A `@revoked` line holds this key (or, for a certificate, its signing CA).
    Revoked {
        /// File holding the line.
        file: PathBuf,
        /// One-based line number.
        line: usize,
    },
}

impl Verdict {
    /// Whether the connection may proceed without asking anyone.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Trusted { .. })
    }
}

/// Errors while reading or writing known_hosts files.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    /// A known_hosts file exists but could not be read.
    #[error("cannot read known_hosts file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A known_hosts file or its directory could not be written.
    #[error("cannot write known_hosts file {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The host name cannot be stored (empty, or holds whitespace, a comma or
    /// control characters).
    #[error("host name {host:?} cannot be stored in known_hosts")]
    InvalidHost {
        /// The rejected host name.
        host: String,
    },
    /// The key could not be encoded in OpenSSH format.
    #[error("cannot encode host key: {source}")]
    Encode {
        /// The underlying error.
        #[source]
        source: russh::keys::ssh_key::Error,
    },
    /// Producing a hashed entry failed (salt generation or HMAC setup).
    #[error("cannot hash host name: {reason}")]
    Hash {
        /// What failed.
        reason: String,
    },
}

/// The name a host is recorded under: lower-cased `host` for port 22,
/// `[host]:port` otherwise.
pub fn host_entry_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The OpenSSH SHA-256 fingerprint of a key (`SHA256:` then unpadded base64),
/// as printed by `ssh-keygen -lf`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key`, presented by `host` on `port`, against `files` in order.
pub fn verify(
    files: &[PathBuf],
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<Verdict, KnownHostsError> {
    let db = Database::load(files)?;
    Ok(db.verify_key(host, port, key.key_data()))
}

/// Key types (e.g. `ssh-ed25519`) recorded for `host` on `port` in plain
/// (unmarked) lines of `files`, in file order without repeats. OpenSSH uses
/// this to prefer host key algorithms it can already verify.
pub fn known_key_types(
    files: &[PathBuf],
    host: &str,
    port: u16,
) -> Result<Vec<String>, KnownHostsError> {
    let db = Database::load(files)?;
    Ok(db.known_types(&db.host_entries(&lookup_names(host, port))))
}

/// Checks a host certificate presented by `host` on `port` against `files`.
///
/// russh 0.65 hands a certificate to `check_server_key` as
/// `PublicKeyOrCertificate::Certificate` when the client advertises
/// certificate host key algorithms (`Preferred::host_key_certificates`); the
/// key exchange signature has then already been checked with the key the
/// certificate contains.
///
/// The result is [`Verdict::Revoked`] when the certified key or the signing
/// CA is revoked, and [`Verdict::Trusted`] (naming the `@cert-authority` line)
/// when a CA listed for this host signed the certificate and the certificate
/// is a host certificate, is valid now, has no critical options, and lists
/// `host` among its principals (or lists none). For a non-22 port, CA lines
/// for the bare host name are accepted too, as OpenSSH does. Otherwise, like
/// OpenSSH, the certified key is checked as a plain key with [`verify`].
pub fn verify_certificate(
    files: &[PathBuf],
    host: &str,
    port: u16,
    cert: &Certificate,
) -> Result<Verdict, KnownHostsError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let db = Database::load(files)?;
    Ok(db.verify_certificate(host, port, cert, now))
}

/// Records `key` for `host` on `port` at the end of `file` and returns the
/// one-based line number of the new entry.
///
/// The file is rewritten atomically: its current content plus the new line go
/// to a temporary file in the same directory, which is synced and renamed over
/// it (a symbolic link is followed and its target replaced). A missing
/// directory is created with mode 0700 and a missing file with mode 0600; an
/// existing file keeps its mode. Unlike OpenSSH's in-place append, two
/// processes appending at the same moment may lose one entry (the last rename
/// wins); the file is never left half-written.
pub fn append(
    file: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<usize, KnownHostsError> {
    check_host(host)?;
    write_entry(file, &host_entry_name(host, port), key)
}

/// Like [`append`], but records the host name hashed (`|1|salt|hmac`), as
/// OpenSSH does with `HashKnownHosts yes`.
pub fn append_hashed(
    file: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<usize, KnownHostsError> {
    check_host(host)?;
    let mut salt = [0u8; HASH_SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| KnownHostsError::Hash {
        reason: e.to_string(),
    })?;
    let mac = host_mac(&salt, &host_entry_name(host, port)).map_err(|e| KnownHostsError::Hash {
        reason: e.to_string(),
    })?;
    let field = format!(
        "{HASH_MAGIC}{}|{}",
        BASE64.encode(salt),
        BASE64.encode(mac.finalize().into_bytes())
    );
    write_entry(file, &field, key)
}

fn check_host(host: &str) -> Result<(), KnownHostsError> {
    let bad = host.is_empty()
        || host.starts_with(['@', '|', '#'])
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if bad {
        Err(KnownHostsError::InvalidHost {
            host: host.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// HMAC-SHA1 keyed with `salt`, fed with `name`: the hashed-entry scheme.
fn host_mac(salt: &[u8], name: &str) -> Result<Hmac<Sha1>, hmac::digest::InvalidLength> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(salt)?;
    mac.update(name.as_bytes());
    Ok(mac)
}

/// The marker at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    CertAuthority,
    Revoked,
}

/// One usable known_hosts line.
#[derive(Debug)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: String,
    key_type: String,
    key: KeyData,
}

impl Entry {
    /// Whether this line's host field applies to any of `names` (lower-cased).
    fn matches(&self, names: &[String]) -> bool {
        if let Some(hashed) = self.hosts.strip_prefix(HASH_MAGIC) {
            return matches_hashed(hashed, names);
        }
        let patterns = self.hosts.to_ascii_lowercase();
        let results: Vec<ListMatch> = names
            .iter()
            .map(|n| match_pattern_list(n, &patterns))
            .collect();
        !results.contains(&ListMatch::Negated) && results.contains(&ListMatch::Positive)
    }
}

fn matches_hashed(field: &str, names: &[String]) -> bool {
    let Some((salt, hash)) = field.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    names
        .iter()
        .any(|name| host_mac(&salt, name).is_ok_and(|mac| mac.verify_slice(&hash).is_ok()))
}

/// Parses one line; `None` for blank, comment and unusable lines.
fn parse_line(line_no: usize, text: &str) -> Option<Entry> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_ascii_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let blob = BASE64.decode(fields.next()?).ok()?;
    let key = PublicKey::from_bytes(&blob).ok()?;
    if key.algorithm().as_str() != key_type {
        return None;
    }
    Some(Entry {
        line: line_no,
        marker,
        hosts: first.to_owned(),
        key_type: key_type.to_owned(),
        key: key.key_data().clone(),
    })
}

/// The entries of all files, in order.
#[derive(Debug, Default)]
struct Database {
    files: Vec<(PathBuf, Vec<Entry>)>,
}

impl Database {
    fn load(files: &[PathBuf]) -> Result<Self, KnownHostsError> {
        let mut db = Database::default();
        for path in files {
            let bytes = match fs::read(path) {
                Ok(bytes) => bytes,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue;
                }
                Err(source) => {
                    return Err(KnownHostsError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            };
            let entries = bytes
                .split(|b| *b == b'\n')
                .enumerate()
                .filter_map(|(i, line)| parse_line(i + 1, &String::from_utf8_lossy(line)))
                .collect();
            db.files.push((path.clone(), entries));
        }
        Ok(db)
    }

    fn entries(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.files
            .iter()
            .flat_map(|(path, entries)| entries.iter().map(move |e| (path.as_path(), e)))
    }

    fn revoked(&self, key: &KeyData) -> Option<Verdict> {
        self.entries()
            .find(|(_, e)| e.marker == Marker::Revoked && e.key == *key)
            .map(|(file, e)| Verdict::Revoked {
                file: file.to_path_buf(),
                line: e.line,
            })
    }

    /// Plain (unmarked) lines that apply to one of `names`, in order.
    fn host_entries(&self, names: &[String]) -> Vec<(&Path, &Entry)> {
        self.entries()
            .filter(|(_, e)| e.marker == Marker::None && e.matches(names))
            .collect()
    }

    /// The key types of `entries`, in order, without repeats.
    fn known_types(&self, entries: &[(&Path, &Entry)]) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for (_, e) in entries {
            if !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    fn verify_key(&self, host: &str, port: u16, key: &KeyData) -> Verdict {
        if let Some(revoked) = self.revoked(key) {
            return revoked;
        }
        let for_host = self.host_entries(&lookup_names(host, port));
        if let Some((file, e)) = for_host.iter().find(|(_, e)| e.key == *key) {
            return Verdict::Trusted {
                file: file.to_path_buf(),
                line: e.line,
            };
        }
        let algorithm = key.algorithm();
        if let Some((file, e)) = for_host
            .iter()
            .find(|(_, e)| e.key.algorithm() == algorithm)
        {
            return Verdict::Changed {
                file: file.to_path_buf(),
                line: e.line,
                known_type: e.key_type.clone(),
            };
        }
        match for_host.first() {
            Some((file, e)) => Verdict::UnknownWithOtherTypes {
                file: file.to_path_buf(),
                line: e.line,
                known_types: self.known_types(&for_host),
            },
            None => Verdict::Unknown,
        }
    }

    fn verify_certificate(&self, host: &str, port: u16, cert: &Certificate, now: u64) -> Verdict {
        let ca = cert.signature_key();
        if let Some(revoked) = self.revoked(cert.public_key()).or_else(|| self.revoked(ca)) {
            return revoked;
        }
        let mut candidates = vec![lookup_names(host, port)];
        if port != 22 {
            candidates.push(lookup_names(host, 22));
        }
        let authority = candidates.iter().find_map(|names| {
            self.entries().find(|(_, e)| {
                e.marker == Marker::CertAuthority && e.key == *ca && e.matches(names)
            })
        });
        if let Some((file, e)) = authority {
            match check_host_certificate(cert, host, &e.key, now) {
                Ok(()) => {
                    return Verdict::Trusted {
                        file: file.to_path_buf(),
                        line: e.line,
                    };
                }
                Err(reason) => tracing::warn!(
                    host,
                    ca_file = %file.display(),
                    ca_line = e.line,
                    "host certificate rejected: {reason}; checking the plain key"
                ),
            }
        }
        self.verify_key(host, port, cert.public_key())
    }
}

/// The names a host is looked up under, lower-cased.
fn lookup_names(host: &str, port: u16) -> Vec<String> {
    let mut names = vec![host_entry_name(host, port)];
    if port == 22 {
        names.push(format!("[{}]:22", host.to_ascii_lowercase()));
    }
    names
}

/// The checks OpenSSH applies to a host certificate once its CA is trusted.
fn check_host_certificate(
    cert: &Certificate,
    host: &str,
    ca: &KeyData,
    now: u64,
) -> Result<(), String> {
    if cert.cert_type() != CertType::Host {
        return Err("not a host certificate".to_owned());
    }
    if !cert.critical_options().is_empty() {
        return Err("unsupported critical options".to_owned());
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(host)) {
        return Err(format!("{host:?} is not among the certificate principals"));
    }
    let ca_fingerprint = Fingerprint::new(HashAlg::Sha256, ca);
    cert.validate_at(now, [&ca_fingerprint])
        .map_err(|_| "bad signature or outside its validity period".to_owned())
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> KnownHostsError + '_ {
    move |source| KnownHostsError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn write_entry(file: &Path, hosts_field: &str, key: &PublicKey) -> Result<usize, KnownHostsError> {
    let encoded = PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .map_err(|source| KnownHostsError::Encode { source })?;
    let target = match fs::canonicalize(file) {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => file.to_path_buf(),
        Err(source) => {
            return Err(KnownHostsError::Read {
                path: file.to_path_buf(),
                source,
            });
        }
    };
    if target.file_name().is_none() {
        return Err(KnownHostsError::Write {
            path: target.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        });
    }
    let dir = fsutil::parent_dir(&target);
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err(dir))?;
    }

    let (mut content, mode) = match fs::read(&target) {
        Ok(bytes) => {
            let mode = fs::metadata(&target)
                .map_err(|source| KnownHostsError::Read {
                    path: target.clone(),
                    source,
                })?
                .permissions()
                .mode()
                & 0o7777;
            (bytes, mode)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), 0o600),
        Err(source) => {
            return Err(KnownHostsError::Read {
                path: target.clone(),
                source,
            });
        }
    };
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    let line = content.iter().filter(|b| **b == b'\n').count() + 1;
    content.extend_from_slice(format!("{hosts_field} {encoded}\n").as_bytes());

    fsutil::write_atomic(&target, &content, mode).map_err(write_err(&target))?;
    Ok(line)
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A temporary directory with helpers around `ssh-keygen`.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().expect("tempdir"),
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn keygen(&self, args: &[&str]) -> String {
            let out = Command::new("ssh-keygen")
                .args(args)
                .output()
                .expect("run ssh-keygen");
            assert!(
                out.status.success(),
                "ssh-keygen {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        /// Generates a key pair `name` and returns its public key.
        fn key(&self, name: &str, key_type: &str) -> PublicKey {
            let path = self.path(name);
            let path_str = path.to_str().expect("utf-8 temp path");
            self.keygen(&["-q", "-t", key_type, "-N", "", "-C", name, "-f", path_str]);
            PublicKey::read_openssh_file(self.path(&format!("{name}.pub"))).expect("read key")
        }

        /// The `keytype base64` part of a public key.
        fn key_text(key: &PublicKey) -> String {
            PublicKey::new(key.key_data().clone(), "")
                .to_openssh()
                .expect("encode")
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.path(name);
            fs::write(&path, text).expect("write known_hosts");
            path
        }
    }

    fn trusted(file: &Path, line: usize) -> Verdict {
        Verdict::Trusted {
            file: file.to_path_buf(),
            line,
        }
    }

    #[test]
    fn verify_should_trust_plain_host_entry() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let kh = fx.write(
            "known_hosts",
            &format!(
                "other.example {}\nHost.Example {} comment here\n",
                Fixture::key_text(&fx.key("o", "ed25519")),
                Fixture::key_text(&key)
            ),
        );
        let files = [kh.clone()];
        assert_eq!(
            verify(&files, "host.example", 22, &key).expect("verify"),
            trusted(&kh, 2)
        );
        assert_eq!(
            verify(&files, "HOST.example", 22, &key).expect("verify"),
            trusted(&kh, 2)
        );
        assert_eq!(
            verify(&files, "host.example", 2222, &key).expect("verify"),
            Verdict::Unknown
        );
    }

    #[test]
    fn verify_should_match_bracketed_port_entries() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let text = Fixture::key_text(&key);
        let kh = fx.write(
            "known_hosts",
            &format!("[h.example]:2222 {text}\n[g.example]:22 {text}\n"),
        );
        let files = [kh.clone()];
        assert_eq!(
            verify(&files, "h.example", 2222, &key).expect("verify"),
            trusted(&kh, 1)
        );
        assert_eq!(
            verify(&files, "h.example", 22, &key).expect("verify"),
            Verdict::Unknown
        );
        assert_eq!(
            verify(&files, "h.example", 2223, &key).expect("verify"),
            Verdict::Unknown
        );
        assert_eq!(
            verify(&files, "g.example", 22, &key).expect("verify"),
            trusted(&kh, 2)
        );
    }

    #[test]
    fn verify_should_match_hashed_entries_from_ssh_keygen() {
        let fx = Fixture::new();
        let key = fx.key("host", "ecdsa");
        let text = Fixture::key_text(&key);
        let kh = fx.write(
            "known_hosts",
            &format!("h.example,10.0.0.1 {text}\n[h.example]:2222 {text}\n"),
        );
        fx.keygen(&["-q", "-H", "-f", kh.to_str().expect("utf-8")]);
        let hashed = fs::read_to_string(&kh).expect("read");
        assert!(hashed.lines().all(|l| l.starts_with("|1|")), "{hashed}");
        let files = [kh.clone()];
        assert_eq!(
            verify(&files, "H.example", 22, &key).expect("verify"),
            trusted(&kh, 1)
        );
        assert_eq!(
            verify(&files, "10.0.0.1", 22, &key).expect("verify"),
            trusted(&kh, 2)
        );
        assert_eq!(
            verify(&files, "h.example", 2222, &key).expect("verify"),
            trusted(&kh, 3)
        );
        assert_eq!(
            verify(&files, "h.example", 2200, &key).expect("verify"),
            Verdict::Unknown
        );
    }

    #[test]
    fn verify_should_honour_wildcards_and_negation() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let text = Fixture::key_text(&key);
        let kh = fx.write(
            "known_hosts",
            &format!("*.example,!bad.example {text}\nweb? {text}\n[*.port]:* {text}\n"),
        );
        let files = [kh.clone()];
        assert_eq!(
            verify(&files, "a.example", 22, &key).expect("verify"),
            trusted(&kh, 1)
        );
        assert_eq!(
            verify(&files, "bad.example", 22, &key).expect("verify"),
            Verdict::Unknown
        );
        assert_eq!(
            verify(&files, "web1", 22, &key).expect("verify"),
            trusted(&kh, 2)
        );
        assert_eq!(
            verify(&files, "web10", 22, &key).expect("verify"),
            Verdict::Unknown
        );
        assert_eq!(
            verify(&files, "x.port", 2022, &key).expect("verify"),
            trusted(&kh, 3)
        );
    }

    #[test]
    fn verify_should_report_changed_key_with_file_and_line() {
        let fx = Fixture::new();
        let old = fx.key("old", "ed25519");
        let rsa = fx.key("rsa", "rsa");
        let new = fx.key("new", "ed25519");
        let kh = fx.write(
            "known_hosts",
            &format!(
                "# header\nh.example {}\n\nh.example {}\n",
                Fixture::key_text(&rsa),
                Fixture::key_text(&old)
            ),
        );
        let verdict = verify(std::slice::from_ref(&kh), "h.example", 22, &new).expect("verify");
        assert_eq!(
            verdict,
            Verdict::Changed {
                file: kh.clone(),
                line: 4,
                known_type: "ssh-ed25519".to_owned()
            }
        );
        assert_eq!(
            verify(std::slice::from_ref(&kh), "h.example", 22, &rsa).expect("verify"),
            trusted(&kh, 2)
        );
    }

    #[test]
    fn verify_should_report_other_known_types() {
        let fx = Fixture::new();
        let rsa = fx.key("rsa", "rsa");
        let new = fx.key("new", "ed25519");
        let kh = fx.write(
            "known_hosts",
            &format!("h.example {}\n", Fixture::key_text(&rsa)),
        );
        assert_eq!(
            verify(std::slice::from_ref(&kh), "h.example", 22, &new).expect("verify"),
            Verdict::UnknownWithOtherTypes {
                file: kh,
                line: 1,
                known_types: vec!["ssh-rsa".to_owned()]
            }
        );
    }

    #[test]
    fn known_key_types_should_list_types_for_host() {
        let fx = Fixture::new();
        let rsa = Fixture::key_text(&fx.key("rsa", "rsa"));
        let ed = Fixture::key_text(&fx.key("ed", "ed25519"));
        let ecdsa = Fixture::key_text(&fx.key("ecdsa", "ecdsa"));
        let kh = fx.write(
            "known_hosts",
            &format!(
                "h.example {rsa}\nother {ecdsa}\n@cert-authority * {ecdsa}\n\
                 h.example,g {ed}\nh.example {rsa}\n"
            ),
        );
        let files = [kh, fx.path("missing")];
        assert_eq!(
            known_key_types(&files, "H.example", 22).expect("types"),
            vec!["ssh-rsa".to_owned(), "ssh-ed25519".to_owned()]
        );
        assert!(
            known_key_types(&files, "h.example", 2222)
                .expect("types")
                .is_empty()
        );
    }

    #[test]
    fn verify_should_put_revocation_first() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let text = Fixture::key_text(&key);
        let user = fx.write("user", &format!("h.example {text}\n"));
        let global = fx.write("global", &format!("\n@revoked * {text}\n"));
        let verdict = verify(&[user, global.clone()], "h.example", 22, &key).expect("verify");
        assert_eq!(
            verdict,
            Verdict::Revoked {
                file: global,
                line: 2
            }
        );
    }

    #[test]
    fn verify_should_return_unknown_without_entries() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let other = fx.key("other", "ed25519");
        let kh = fx.write(
            "known_hosts",
            &format!("x.example {}\n", Fixture::key_text(&other)),
        );
        let files = [kh, fx.path("missing"), fx.path("no/such/dir/file")];
        assert_eq!(
            verify(&files, "h.example", 22, &key).expect("verify"),
            Verdict::Unknown
        );
        assert_eq!(
            verify(&[], "h.example", 22, &key).expect("verify"),
            Verdict::Unknown
        );
    }

    #[test]
    fn verify_should_search_files_in_order() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let old = fx.key("old", "ed25519");
        let first = fx.write("first", &format!("h.example {}\n", Fixture::key_text(&old)));
        let second = fx.write(
            "second",
            &format!("#\nh.example {}\n", Fixture::key_text(&key)),
        );
        // A matching key anywhere wins over a mismatching one earlier.
        let files = [first.clone(), second.clone()];
        assert_eq!(
            verify(&files, "h.example", 22, &key).expect("verify"),
            trusted(&second, 2)
        );
        let third = fx.write("third", &format!("h.example {}\n", Fixture::key_text(&key)));
        let files = [third.clone(), second];
        assert_eq!(
            verify(&files, "h.example", 22, &key).expect("verify"),
            trusted(&third, 1)
        );
    }

    #[test]
    fn verify_should_skip_comments_and_garbage() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let text = Fixture::key_text(&key);
        let body = format!(
            "# comment h.example {text}\n   \n\tgarbage\nh.example ssh-ed25519 !!!notbase64\n\
             h.example ssh-rsa {}\n@bogus h.example {text}\n@cert-authority h.example {text}\n\
             h.example\n\x7f\u{fffd} \r\n  h.example   {text}  \r\n",
            text.split(' ').nth(1).expect("base64")
        );
        let kh = fx.write("known_hosts", &body);
        assert_eq!(
            verify(std::slice::from_ref(&kh), "h.example", 22, &key).expect("verify"),
            trusted(&kh, 10)
        );
    }

    #[test]
    fn verify_should_fail_on_unreadable_file() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let dir = fx.path("adir");
        fs::create_dir(&dir).expect("mkdir");
        let err = verify(std::slice::from_ref(&dir), "h", 22, &key).expect_err("directory");
        assert!(
            matches!(&err, KnownHostsError::Read { path, .. } if *path == dir),
            "{err}"
        );
        assert!(err.to_string().contains(dir.to_str().expect("utf-8")));
    }

    #[test]
    fn fingerprint_should_equal_ssh_keygen_output() {
        let fx = Fixture::new();
        for key_type in ["ed25519", "ecdsa", "rsa"] {
            let key = fx.key(key_type, key_type);
            let pub_path = fx.path(&format!("{key_type}.pub"));
            let out = fx.keygen(&["-lf", pub_path.to_str().expect("utf-8")]);
            let expected = out.split_whitespace().nth(1).expect("fingerprint field");
            assert_eq!(fingerprint(&key), expected);
        }
    }

    #[test]
    fn host_entry_name_should_bracket_non_default_ports() {
        assert_eq!(host_entry_name("Host", 22), "host");
        assert_eq!(host_entry_name("host", 2222), "[host]:2222");
        assert_eq!(host_entry_name("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn append_should_add_line_that_verifies() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let other = fx.key("other", "rsa");
        let kh = fx.write(
            "known_hosts",
            &format!("# mine\nx.example {}", Fixture::key_text(&other)),
        );
        fs::set_permissions(&kh, fs::Permissions::from_mode(0o644)).expect("chmod");
        let line = append(&kh, "h.example", 2222, &key).expect("append");
        assert_eq!(line, 3);
        let files = [kh.clone()];
        assert_eq!(
            verify(&files, "h.example", 2222, &key).expect("verify"),
            trusted(&kh, 3)
        );
        assert_eq!(
            verify(&files, "x.example", 22, &other).expect("verify"),
            trusted(&kh, 2)
        );
        let mode = fs::metadata(&kh).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let line = append_hashed(&kh, "hashed.example", 22, &key).expect("append");
        assert_eq!(line, 4);
        assert_eq!(
            verify(&files, "hashed.example", 22, &key).expect("verify"),
            trusted(&kh, 4)
        );
        // ssh-keygen finds our entries too.
        let out = fx.keygen(&["-F", "hashed.example", "-f", kh.to_str().expect("utf-8")]);
        assert!(out.contains("line 4"), "{out}");
        let out = fx.keygen(&["-F", "[h.example]:2222", "-f", kh.to_str().expect("utf-8")]);
        assert!(out.contains("line 3"), "{out}");
        let leftovers: Vec<_> = fs::read_dir(fx.dir.path())
            .expect("readdir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn append_should_create_missing_directory_and_file_privately() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let ssh_dir = fx.path("home/.ssh");
        let kh = ssh_dir.join("known_hosts");
        assert_eq!(append(&kh, "h.example", 22, &key).expect("append"), 1);
        let dir_mode = fs::metadata(&ssh_dir).expect("stat").permissions().mode() & 0o777;
        let file_mode = fs::metadata(&kh).expect("stat").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(file_mode, 0o600);
        assert_eq!(
            verify(std::slice::from_ref(&kh), "h.example", 22, &key).expect("verify"),
            trusted(&kh, 1)
        );
    }

    #[test]
    fn append_should_follow_symlink() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let real = fx.write("real", "");
        let link = fx.path("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert_eq!(append(&link, "h.example", 22, &key).expect("append"), 1);
        assert!(
            fs::symlink_metadata(&link)
                .expect("lstat")
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            verify(std::slice::from_ref(&real), "h.example", 22, &key).expect("verify"),
            trusted(&real, 1)
        );
    }

    #[test]
    fn append_should_reject_hosts_that_would_corrupt_the_file() {
        let fx = Fixture::new();
        let key = fx.key("host", "ed25519");
        let kh = fx.path("known_hosts");
        for bad in ["", "a b", "a,b", "a\nb", "@revoked", "|1|x"] {
            assert!(matches!(
                append(&kh, bad, 22, &key),
                Err(KnownHostsError::InvalidHost { .. })
            ));
        }
        assert!(!kh.exists());
    }

    /// Signs `host_key_name.pub` with `ca_name` and returns the certificate.
    fn certify(fx: &Fixture, ca: &str, host_key: &str, extra: &[&str]) -> Certificate {
        let ca_path = fx.path(ca);
        let pub_path = fx.path(&format!("{host_key}.pub"));
        let mut args = vec![
            "-q",
            "-s",
            ca_path.to_str().expect("utf-8"),
            "-I",
            "test-host",
        ];
        args.extend_from_slice(extra);
        args.push(pub_path.to_str().expect("utf-8"));
        fx.keygen(&args);
        Certificate::read_file(&fx.path(&format!("{host_key}-cert.pub"))).expect("read cert")
    }

    #[test]
    fn verify_certificate_should_trust_host_cert_from_listed_ca() {
        let fx = Fixture::new();
        let ca = fx.key("ca", "ed25519");
        let host_key = fx.key("host", "ed25519");
        let cert = certify(
            &fx,
            "ca",
            "host",
            &["-h", "-n", "h.example,alias", "-V", "-5m:+1h"],
        );
        let kh = fx.write(
            "known_hosts",
            &format!(
                "# cas\n@cert-authority *.example {}\n",
                Fixture::key_text(&ca)
            ),
        );
        let files = [kh.clone()];
        assert_eq!(
            verify_certificate(&files, "h.example", 22, &cert).expect("verify"),
            trusted(&kh, 2)
        );
        // A non-22 port falls back to the bare host name for CA lines.
        assert_eq!(
            verify_certificate(&files, "h.example", 2222, &cert).expect("verify"),
            trusted(&kh, 2)
        );
        // Not a listed principal: retried as a plain key, which is unknown.
        assert_eq!(
            verify_certificate(&files, "g.example", 22, &cert).expect("verify"),
            Verdict::Unknown
        );
        // The CA line does not apply to this host.
        assert_eq!(
            verify_certificate(&files, "alias", 22, &cert).expect("verify"),
            Verdict::Unknown
        );
        // The CA does not vouch for plain keys.
        assert_eq!(
            verify(&files, "h.example", 22, &host_key).expect("verify"),
            Verdict::Unknown
        );
    }

    #[test]
    fn verify_certificate_should_reject_invalid_certificates() {
        let fx = Fixture::new();
        let ca = fx.key("ca", "ed25519");
        let other_ca = fx.key("other_ca", "ed25519");
        let host_key = fx.key("host", "ed25519");
        let kh = fx.write(
            "known_hosts",
            &format!("@cert-authority * {}\n", Fixture::key_text(&ca)),
        );
        let files = [kh.clone()];
        let expired = certify(&fx, "ca", "host", &["-h", "-V", "20000101:20000102"]);
        let reason = check_host_certificate(&expired, "h.example", ca.key_data(), 1_700_000_000)
            .expect_err("expired");
        assert!(reason.contains("validity"), "{reason}");
        assert_eq!(
            verify_certificate(&files, "h.example", 22, &expired).expect("verify"),
            Verdict::Unknown
        );
        let user_cert = certify(&fx, "ca", "host", &["-n", "h.example"]);
        let reason = check_host_certificate(&user_cert, "h.example", ca.key_data(), 1_700_000_000)
            .expect_err("user certificate");
        assert!(reason.contains("not a host certificate"), "{reason}");
        assert_eq!(
            verify_certificate(&files, "h.example", 22, &user_cert).expect("verify"),
            Verdict::Unknown
        );
        let foreign = certify(&fx, "other_ca", "host", &["-h"]);
        // Signed by another CA: the signature does not verify against ours.
        assert!(
            check_host_certificate(&foreign, "h.example", ca.key_data(), 1_700_000_000).is_err()
        );
        assert!(
            check_host_certificate(&foreign, "h.example", other_ca.key_data(), 1_700_000_000)
                .is_ok()
        );
        assert_eq!(
            verify_certificate(&files, "h.example", 22, &foreign).expect("verify"),
            Verdict::Unknown
        );
        // Falling back to the plain key finds it when it is known.
        fs::write(
            &kh,
            format!(
                "@cert-authority * {}\nh.example {}\n",
                Fixture::key_text(&ca),
                Fixture::key_text(&host_key)
            ),
        )
        .expect("write");
        assert_eq!(
            verify_certificate(&files, "h.example", 22, &foreign).expect("verify"),
            trusted(&kh, 2)
        );
        // Empty principal list is accepted for a valid host certificate.
        let any = certify(&fx, "ca", "host", &["-h"]);
        assert_eq!(
            verify_certificate(&files, "h.example", 22, &any).expect("verify"),
            trusted(&kh, 1)
        );
    }

    #[test]
    fn verify_certificate_should_honour_revoked_ca() {
        let fx = Fixture::new();
        let ca = fx.key("ca", "ed25519");
        fx.key("host", "ed25519");
        let cert = certify(&fx, "ca", "host", &["-h", "-n", "h.example"]);
        let text = Fixture::key_text(&ca);
        let kh = fx.write(
            "known_hosts",
            &format!("@cert-authority h.example {text}\n@revoked * {text}\n"),
        );
        assert_eq!(
            verify_certificate(std::slice::from_ref(&kh), "h.example", 22, &cert).expect("verify"),
            Verdict::Revoked { file: kh, line: 2 }
        );
    }
}
