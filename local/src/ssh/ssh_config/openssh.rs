//! Differential test: our resolver against OpenSSH's own (`ssh -G -F <file> <host>`) on a corpus
//! of configurations, for every field [`HostSettings`] has.
//!
//! `ssh -G` prints the settings after its configuration passes; `IdentityFile` and
//! `CertificateFile` it prints as written (OpenSSH expands them only when loading keys), so
//! those are expanded here with the values `ssh -G` printed. Known and accepted differences are
//! listed in the module docs of [`super`]; the corpus stays inside what we claim to match.
//!
//! Without `ssh` the test skips with a note, unless `OPENCODE_REMOTE_REQUIRE_SSHD=1` (CI),
//! where it fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use sha1::{Digest, Sha1};

use super::*;

/// One configuration (the main file and the files it includes, `{dir}` standing for the
/// directory they are in and `{user}` for the local user) and the hosts to resolve with it.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    hosts: &'static [&'static str],
}

const CORPUS: &[Case] = &[
    Case {
        name: "host blocks, wildcards, negation, first value wins",
        files: &[(
            "config",
            "# comment\n\
             Host web?\n  HostName %h.Example.com\n  User deploy\n\
             Host *.prod !db.prod\n  User ops\n  Port 2200\n\
             Host db.prod\n  HostName 10.0.0.5\n  IdentityFile ~/.ssh/db_%r\n  IdentitiesOnly yes\n\
             Host *\n  User fallback\n  Port 22\n  ServerAliveInterval 30\n  ConnectTimeout 1m30s\n",
        )],
        hosts: &["web1", "WEB2", "api.prod", "db.prod", "other"],
    },
    Case {
        name: "Include with globs, inside blocks too",
        files: &[
            (
                "config",
                "Include {dir}/conf.d/*.conf\n\
                 Host inc-*\n  User outer\n\
                 Match host inner-x\n  Include {dir}/scoped.conf\n\
                 Host *\n  ServerAliveCountMax 5\n",
            ),
            ("conf.d/10-a.conf", "Host inc-a\n  HostName a.internal\n"),
            ("conf.d/20-b.conf", "Host inc-*\n  Port 2022\n"),
            ("conf.d/skipped.txt", "Host *\n  Port 1\n"),
            ("scoped.conf", "User scoped\nPort 2023\n"),
        ],
        hosts: &["inc-a", "inc-b", "inner-x", "other"],
    },
    Case {
        name: "Match host, originalhost, user, localuser, all, negation",
        files: &[(
            "config",
            "Match originalhost alias1\n  HostName Real1.example\n\
             Match host real1.example\n  User matched-by-host\n\
             Match user matched-by-host\n  Port 2201\n\
             Match localuser {user}\n  IdentityAgent ~/agent-%u\n\
             Match !host nomatch,other*\n  ServerAliveCountMax 7\n\
             Match all\n  StrictHostKeyChecking accept-new\n",
        )],
        hosts: &["alias1", "other1", "nomatch"],
    },
    Case {
        name: "Match final and canonical (OpenSSH's second pass)",
        files: &[(
            "config",
            "Match final\n  User final-user\n\
             Match canonical\n  Port 2345\n\
             Host f*\n  User first-pass\n  HashKnownHosts yes\n\
             Host *\n  IdentityFile ~/.ssh/first\n\
             Match final\n  IdentityFile ~/.ssh/first\n  IdentityFile ~/.ssh/second\n",
        )],
        hosts: &["foo", "bar"],
    },
    Case {
        name: "% tokens and ~ in paths",
        files: &[(
            "config",
            "Host tok\n  HostName Tok.Example.COM\n  User u1\n  Port 2222\n\
             \x20 IdentityFile ~/.ssh/id_%h_%r_%p_%n\n\
             \x20 IdentityFile %d/.ssh/%u-%l-%L-%i-%%\n\
             \x20 CertificateFile ~/.ssh/cert-%C\n\
             \x20 UserKnownHostsFile ~/.ssh/kh-%k %d/kh2-%h\n\
             \x20 HostKeyAlias TokAlias\n\
             \x20 IdentityAgent ~/.ssh/agent.%h\n\
             Host tok2\n  UserKnownHostsFile none\n  GlobalKnownHostsFile /etc/x %d/y\n\
             \x20 IdentityAgent none\n  CertificateFile ~/c-%k\n",
        )],
        hosts: &["tok", "tok2", "TOK"],
    },
    Case {
        name: "ProxyJump chains and ProxyCommand",
        files: &[(
            "config",
            "Host jump-a\n  ProxyJump bastion1,admin@bastion2:2222\n\
             Host jump-b\n  ProxyJump ssh://us%40er@bastion3:2200,[::1]:2201,ssh://b4\n\
             Host jump-c\n  ProxyCommand ssh -W %h:%p gw\n  ProxyJump ignored\n\
             Host jump-d\n  ProxyJump none\n\
             Host *\n  ProxyJump default-gw\n",
        )],
        hosts: &["jump-a", "jump-b", "jump-c", "jump-d", "plain"],
    },
    Case {
        name: "quotes, equals signs and keyword case",
        files: &[(
            "config",
            "HOSTNAME = \"quoted.example\"\n\
             host  Q \"W R\"\n  user=\"quser\"\n  Port=2000\n  IDENTITYFILE \"~/.ssh/with space\"\n\
             Host *\n  stricthostkeychecking no\n",
        )],
        hosts: &["Q", "W", "x"],
    },
];

/// The local user as OpenSSH sees it: name, home and uid from the password database.
fn passwd() -> (String, PathBuf) {
    let uid = rustix::process::getuid().as_raw();
    let out = Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .expect("getent runs");
    let line = String::from_utf8(out.stdout).expect("UTF-8 passwd entry");
    let fields: Vec<&str> = line.trim().split(':').collect();
    (fields[0].to_owned(), PathBuf::from(fields[5]))
}

/// `ssh -G` output as keyword → values (one per line it appeared on).
fn openssh(config: &Path, host: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let out = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(host)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run ssh: {err}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        settings
            .entry(key.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    Ok(settings)
}

/// OpenSSH's expansion of an `IdentityFile`/`CertificateFile` value, from what `ssh -G` printed.
fn expand_like_openssh(
    value: &str,
    alias: &str,
    printed: &BTreeMap<String, Vec<String>>,
    (user, home): (&str, &Path),
) -> String {
    let one = |key: &str| printed.get(key).and_then(|v| v.first()).cloned();
    let hostname = one("hostname").unwrap_or_default();
    let remote_user = one("user").unwrap_or_default();
    let port = one("port").unwrap_or_default();
    let node = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let short = node.split('.').next().unwrap_or_default().to_owned();
    let hash = Sha1::digest(format!("{node}{hostname}{port}{remote_user}"));
    let hash: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let key_alias = one("hostkeyalias").unwrap_or_else(|| alias.to_owned());
    let value = match value.strip_prefix("~/") {
        Some(rest) => format!("{}/{rest}", home.display()),
        None => value.to_owned(),
    };
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(&hostname),
            Some('r') => out.push_str(&remote_user),
            Some('p') => out.push_str(&port),
            Some('n') => out.push_str(alias),
            Some('d') => out.push_str(&home.to_string_lossy()),
            Some('u') => out.push_str(user),
            Some('l') => out.push_str(&node),
            Some('L') => out.push_str(&short),
            Some('i') => out.push_str(&rustix::process::getuid().as_raw().to_string()),
            Some('k') => out.push_str(&key_alias),
            Some('C') => out.push_str(&hash),
            other => panic!("token %{other:?} in the corpus is not expanded by this test"),
        }
    }
    out
}

/// A `ProxyJump` value as the hops it means: OpenSSH prints its last hop rewritten
/// (`ssh://u%40x@h` as `u@x@h`), we keep the value as written.
fn hops(spec: &str) -> String {
    match parse_jump_spec(spec) {
        Ok(hops) => format!("{hops:?}"),
        Err(err) => format!("invalid: {err}"),
    }
}

fn yes_no(value: Option<bool>) -> String {
    if value == Some(true) { "yes" } else { "no" }.to_owned()
}

/// Our settings in `ssh -G`'s words, for the keywords we resolve (defaults filled as OpenSSH
/// prints them).
fn ours_as_openssh(
    ours: &HostSettings,
    alias: &str,
    printed: &BTreeMap<String, Vec<String>>,
    (user, home): (&str, &Path),
) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut put = |key: &str, values: Vec<String>| {
        map.insert(key.to_owned(), values);
    };
    let paths = |list: &[PathBuf]| -> Vec<String> {
        list.iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    };
    put(
        "hostname",
        vec![
            ours.hostname
                .clone()
                .unwrap_or_else(|| alias.to_ascii_lowercase()),
        ],
    );
    put(
        "user",
        vec![ours.user.clone().unwrap_or_else(|| user.to_owned())],
    );
    put("port", vec![ours.port.unwrap_or(22).to_string()]);
    if ours.identity_files.is_empty() {
        // OpenSSH lists its defaults (which differ between versions): take what it printed,
        // after checking that they are defaults.
        let defaults = printed.get("identityfile").cloned().unwrap_or_default();
        assert!(
            defaults.iter().all(|f| f.starts_with("~/.ssh/id_")),
            "{alias}: we found no IdentityFile, OpenSSH has {defaults:?}"
        );
        let defaults = defaults
            .iter()
            .map(|v| expand_like_openssh(v, alias, printed, (user, home)))
            .collect();
        put("identityfile", defaults);
    } else {
        put("identityfile", paths(&ours.identity_files));
    }
    if !ours.certificate_files.is_empty() {
        put("certificatefile", paths(&ours.certificate_files));
    }
    put("identitiesonly", vec![yes_no(ours.identities_only)]);
    if let Some(jump) = &ours.proxy_jump {
        put("proxyjump", vec![hops(jump)]);
    }
    if let Some(command) = &ours.proxy_command {
        put("proxycommand", vec![command.clone()]);
    }
    let list = |files: &[PathBuf]| match files {
        [] => "none".to_owned(),
        files => paths(files).join(" "),
    };
    put(
        "userknownhostsfile",
        vec![list(&ours.user_known_hosts_files)],
    );
    put(
        "globalknownhostsfile",
        vec![list(&ours.global_known_hosts_files)],
    );
    let strict = match ours.strict_host_key_checking {
        Some(StrictHostKeyChecking::Yes) => "true",
        Some(StrictHostKeyChecking::No) => "false",
        Some(StrictHostKeyChecking::AcceptNew) => "accept-new",
        Some(StrictHostKeyChecking::Ask) | None => "ask",
    };
    put("stricthostkeychecking", vec![strict.to_owned()]);
    put("hashknownhosts", vec![yes_no(ours.hash_known_hosts)]);
    if let Some(alias) = &ours.host_key_alias {
        put("hostkeyalias", vec![alias.clone()]);
    }
    put(
        "connecttimeout",
        vec![
            ours.connect_timeout
                .map_or_else(|| "none".to_owned(), |d| d.as_secs().to_string()),
        ],
    );
    put(
        "serveraliveinterval",
        vec![
            ours.server_alive_interval
                .map_or(0, |d| d.as_secs())
                .to_string(),
        ],
    );
    put(
        "serveralivecountmax",
        vec![ours.server_alive_count_max.unwrap_or(3).to_string()],
    );
    if let Some(agent) = &ours.identity_agent {
        put("identityagent", vec![agent.clone()]);
    }
    map
}

/// The same keywords from `ssh -G`'s output, key files expanded as OpenSSH would.
fn theirs(
    printed: &BTreeMap<String, Vec<String>>,
    keys: impl Iterator<Item = String>,
    alias: &str,
    local: (&str, &Path),
) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for key in keys.chain(
        [
            "certificatefile",
            "proxyjump",
            "proxycommand",
            "hostkeyalias",
            "identityagent",
        ]
        .map(str::to_owned),
    ) {
        let Some(values) = printed.get(&key) else {
            continue;
        };
        let values = match key.as_str() {
            "identityfile" | "certificatefile" => values
                .iter()
                .map(|v| expand_like_openssh(v, alias, printed, local))
                .collect(),
            "proxyjump" => values.iter().map(|v| hops(v)).collect(),
            _ => values.clone(),
        };
        map.insert(key, values);
    }
    map
}

#[test]
fn resolve_should_agree_with_openssh_on_the_corpus() {
    let required = std::env::var_os("OPENCODE_REMOTE_REQUIRE_SSHD").is_some_and(|v| v == "1");
    let available = Command::new("ssh")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        assert!(
            !required,
            "`ssh` is not installed, and OPENCODE_REMOTE_REQUIRE_SSHD=1 requires this test"
        );
        eprintln!("skipping the comparison with OpenSSH: `ssh` is not installed");
        return;
    }
    let (user, home) = passwd();
    let ctx = Context {
        home: home.clone(),
        local_user: Some(user.clone()),
    };
    let mut mismatches = Vec::new();
    for case in CORPUS {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in case.files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            let text = text
                .replace("{dir}", &dir.path().to_string_lossy())
                .replace("{user}", &user);
            fs::write(&path, text).expect("write config");
        }
        let config = dir.path().join("config");
        for &host in case.hosts {
            let printed = openssh(&config, host)
                .unwrap_or_else(|err| panic!("{}: ssh -G {host} failed: {err}", case.name));
            let ours = match resolve_inner(&[(config.clone(), Level::User)], host, &ctx) {
                Ok(ours) => ours,
                Err(err) => {
                    mismatches.push(format!("{} / {host}: we fail: {err}", case.name));
                    continue;
                }
            };
            let local = (user.as_str(), home.as_path());
            let ours = ours_as_openssh(&ours, host, &printed, local);
            let theirs = theirs(&printed, ours.keys().cloned(), host, local);
            for key in ours
                .keys()
                .chain(theirs.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                let (a, b) = (ours.get(key), theirs.get(key));
                if a != b {
                    mismatches.push(format!(
                        "{} / {host} / {key}: ours {a:?}, OpenSSH {b:?}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "our resolver and `ssh -G` disagree:\n{}",
        mismatches.join("\n")
    );
}
