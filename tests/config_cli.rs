//! `opencode-remote config …` and `scripts/opencode-remote-cli.sh` against real files in a
//! temporary HOME: comment-preserving edits of JSON and JSONC configs, backups, refusals, error
//! messages, and atomicity when the write fails for real (a full tmpfs, a read-only mount: both
//! inside a private mount namespace, `unshare -m`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::bins::local_bin;

/// A hand-written JSONC config: comments before the plugin array, inside other plugin entries,
/// inside our entry's other providers, trailing commas.
const JSONC: &str = r#"// OpenCode config, edited by hand
{
  "$schema": "https://opencode.ai/config.json",
  /* appearance */
  "theme": "tokyonight", // dark
  "plugin": [
    "opencode-wakatime", // time tracking
    ["opencode-other", { /* other's options */ "x": 1, }],
    ["opencode-remote-provider", {
      // our providers
      "providers": {
        "staging": {
          // staging hosts, do not touch
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
          ],
        },
      },
    }],
  ],
  "model": "anthropic/claude", // trailing
}
"#;

/// Plain JSON, without trailing commas.
const JSON: &str = r#"{
  "$schema": "https://opencode.ai/config.json",
  "plugin": [
    "opencode-wakatime",
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

/// A development setup registering the plugin by path.
const PATH_BASED: &str = r#"{
  "plugin": [
    ["/src/opencode-remote/local/plugin", {"providers": {"dev": {"hosts": [{"name": "vm", "ssh": {"host": "192.168.1.5", "user": "me"}}]}}}]
  ]
}
"#;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Exit code 1 with a single `error: …` line.
    fn error(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        let line = self.stderr.trim_end();
        assert!(
            line.starts_with("error: ") && !line.contains('\n'),
            "not one error line: {line:?}"
        );
        line.trim_start_matches("error: ").to_owned()
    }
}

fn run(command: &mut Command) -> Run {
    // A script written a moment ago can be briefly "busy" when another test thread forked while
    // its write descriptor was open (ETXTBSY); that is a property of the test process, retry.
    let mut attempts = 0;
    let out = loop {
        match command.output() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary HOME with an (optional) OpenCode config.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn with(name: &str, text: &str) -> Home {
        let home = Home::new();
        fs::create_dir_all(home.config_dir()).unwrap();
        fs::write(home.config_dir().join(name), text).unwrap();
        home
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join(".config/opencode")
    }

    /// The config file the commands pick.
    fn config(&self) -> PathBuf {
        let jsonc = self.config_dir().join("opencode.jsonc");
        if jsonc.exists() {
            jsonc
        } else {
            self.config_dir().join("opencode.json")
        }
    }

    fn text(&self) -> String {
        fs::read_to_string(self.config()).unwrap()
    }

    /// Names in the config directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.config_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn backups(&self) -> Vec<PathBuf> {
        self.files()
            .into_iter()
            .filter(|name| name.contains(".bak."))
            .map(|name| self.config_dir().join(name))
            .collect()
    }

    fn isolate<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env("HOME", self.dir.path())
            .env_remove("CONFIG_FILE")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("OPENCODE_CONFIG")
    }

    /// `opencode-remote config <args>`.
    fn config_command(&self, args: &[&str]) -> Run {
        let mut command = Command::new(local_bin());
        command.arg("config").args(args);
        run(self.isolate(&mut command))
    }

    /// `scripts/opencode-remote-cli.sh <args>` using the binary under test.
    fn script(&self, args: &[&str]) -> Run {
        let mut command = Command::new(script());
        command.args(args).env("OPENCODE_REMOTE_BIN", local_bin());
        run(self.isolate(&mut command))
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/opencode-remote-cli.sh")
}

/// `text` with `chunk` inserted right after `anchor`, which must occur once.
fn insert_after(text: &str, anchor: &str, chunk: &str) -> String {
    assert_eq!(text.matches(anchor).count(), 1, "anchor {anchor:?}");
    text.replacen(anchor, &format!("{anchor}{chunk}"), 1)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn is_backup_name(name: &str, config: &str) -> bool {
    let Some(stamp) = name.strip_prefix(&format!("{config}.bak.")) else {
        return false;
    };
    let stamp = stamp.split('.').next().unwrap_or_default();
    stamp.len() == 15
        && stamp.char_indices().all(|(index, c)| {
            if index == 8 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

#[test]
fn config_init_should_create_a_private_config_once() {
    let home = Home::new();
    let out = home.config_command(&["init"]).ok();
    assert!(out.stdout.starts_with("Created "), "{}", out.stdout);
    let config = home.config();
    assert!(config.ends_with(".config/opencode/opencode.json"));
    let value: serde_json::Value = serde_json::from_str(&home.text()).unwrap();
    assert_eq!(value["$schema"], "https://opencode.ai/config.json");
    assert_eq!(
        value["plugin"][0],
        serde_json::json!(["opencode-remote-provider", {"providers": {"default": {"strategy": "first_available", "hosts": []}}}])
    );
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&home.config_dir()), 0o700);
    assert_eq!(mode(&home.dir.path().join(".config")), 0o700);

    let before = home.text();
    let out = home.config_command(&["init"]).ok();
    assert!(
        out.stdout.contains(
            "already has the plugin entry (\"opencode-remote-provider\"); nothing changed"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(home.text(), before);
    assert_eq!(home.files(), ["opencode.json"]);
}

#[test]
fn config_init_should_add_the_entry_to_an_existing_jsonc_config_keeping_comments() {
    let original = "// my settings\n{\n  \"theme\": \"x\", // dark\n  /* plugins */\n  \"plugin\": [\n    \"opencode-wakatime\", // time\n  ],\n}\n";
    let home = Home::with("opencode.jsonc", original);
    fs::write(home.config_dir().join("opencode.json"), "{}").unwrap();
    let out = home.config_command(&["path"]).ok();
    assert_eq!(out.stdout.trim_end(), home.config().display().to_string());
    assert!(out.stdout.trim_end().ends_with("opencode.jsonc"));

    home.config_command(&["init"]).ok();
    assert_eq!(
        home.text(),
        insert_after(
            original,
            "\"opencode-wakatime\", // time",
            "\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n          \"default\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": [],\n          },\n        },\n      },\n    ],"
        )
    );
    let backups = home.backups();
    assert_eq!(backups.len(), 1);
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), original);

    // Twice: nothing changes, no new backup.
    let after = home.text();
    home.config_command(&["init"]).ok();
    assert_eq!(home.text(), after);
    assert_eq!(home.backups().len(), 1);
}

/// Adds a host and removes it again: the first edit inserts exactly the host, the second gives
/// back the original bytes, and each one leaves a backup of what was there before it.
fn add_then_remove(name: &str, original: &str, anchor: &str, host: &str) {
    let home = Home::with(name, original);
    fs::set_permissions(home.config(), fs::Permissions::from_mode(0o640)).unwrap();
    let out = home
        .config_command(&["add", "default", "new-1", "me", "2222", "~/.ssh/id_new"])
        .ok();
    assert_eq!(
        out.stdout.trim_end(),
        format!(
            "Added host `new-1` (me@new-1:2222) to provider `default` in {}.",
            home.config().display()
        )
    );
    assert!(
        out.stderr.contains("Saved the previous version as "),
        "{}",
        out.stderr
    );
    let added = home.text();
    assert_eq!(added, insert_after(original, anchor, host));
    assert_eq!(mode(&home.config()), 0o640);

    home.config_command(&["remove", "default", "new-1"]).ok();
    assert_eq!(home.text(), original);

    let backups = home.backups();
    assert_eq!(backups.len(), 2, "{:?}", home.files());
    let contents: Vec<String> = backups
        .iter()
        .map(|backup| fs::read_to_string(backup).unwrap())
        .collect();
    assert!(contents.contains(&original.to_owned()));
    assert!(contents.contains(&added));
    for backup in &backups {
        let file = backup.file_name().unwrap().to_string_lossy();
        assert!(is_backup_name(&file, name), "{file}");
        assert_eq!(mode(backup), 0o640);
    }
    // No temporary files.
    assert_eq!(home.files().len(), 3, "{:?}", home.files());
}

#[test]
fn config_add_and_remove_should_change_only_the_host_in_a_jsonc_config() {
    add_then_remove(
        "opencode.jsonc",
        JSONC,
        "\"labels\": [\"linux\", \"production\"],\n            },",
        "
            {
              \"name\": \"new-1\",
              \"ssh\": {
                \"host\": \"new-1\",
                \"user\": \"me\",
                \"port\": 2222,
                \"identityFile\": \"~/.ssh/id_new\",
              },
            },",
    );
}

#[test]
fn config_add_and_remove_should_change_only_the_host_in_a_json_config() {
    add_then_remove(
        "opencode.json",
        JSON,
        "\"user\": \"ops\"\n                }\n              }",
        ",
              {
                \"name\": \"new-1\",
                \"ssh\": {
                  \"host\": \"new-1\",
                  \"user\": \"me\",
                  \"port\": 2222,
                  \"identityFile\": \"~/.ssh/id_new\"
                }
              }",
    );
}

#[test]
fn config_add_should_create_providers_and_honour_ssh_host() {
    let home = Home::with("opencode.jsonc", JSONC);
    home.config_command(&["add", "lab", "box", "root", "--ssh-host", "192.0.2.7"])
        .ok();
    let text = home.text();
    assert!(
        text.contains(
            "        \"lab\": {
          \"strategy\": \"first_available\",
          \"hosts\": [
            {
              \"name\": \"box\",
              \"ssh\": {
                \"host\": \"192.0.2.7\",
                \"user\": \"root\",
              },
            },
          ],
        },
      },
    }],"
        ),
        "{text}"
    );
    // Everything before the new provider is as it was.
    let cut = JSONC.find("      },\n    }],").unwrap();
    assert!(text.starts_with(&JSONC[..cut]));
    assert!(text.ends_with(&JSONC[cut..]));
    let out = home.config_command(&["list"]).ok();
    assert!(
        out.stdout
            .contains("provider lab (strategy first_available)\n  box  root@192.0.2.7\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn config_add_should_refuse_bad_input_and_leave_the_file_alone() {
    let home = Home::with("opencode.jsonc", JSONC);
    let err = home
        .config_command(&["add", "default", "prod-web-1", "x"])
        .error();
    assert_eq!(
        err,
        "provider `default` already has a host named `prod-web-1` (ops@203.0.113.10:22)"
    );
    let err = home
        .config_command(&["add", "default", "web1", "x"])
        .error();
    assert_eq!(
        err,
        "provider `default` already has `web1` as an alias of host `prod-web-1` (ops@203.0.113.10:22)"
    );
    for port in ["0", "65536", "ssh"] {
        let err = home
            .config_command(&["add", "default", "h", "u", port])
            .error();
        assert_eq!(
            err,
            format!("bad port `{port}`: must be a number from 1 to 65535")
        );
    }
    let refused: [(&[&str], &str); 3] = [
        (
            &["add", "default", "my host", "u"],
            "bad host name `my host`: must not contain spaces or control characters",
        ),
        (
            &["add", "default", "h", "ops@h"],
            "bad user `ops@h`: give the user and the host as separate arguments",
        ),
        (
            &["add", "default", "h", "--", "-oProxyCommand=x"],
            "bad user `-oProxyCommand=x`: must not start with `-`",
        ),
    ];
    for (args, message) in refused {
        assert_eq!(home.config_command(args).error(), message, "{args:?}");
    }
    let err = home
        .config_command(&["add", "default", "h", "u", "--ssh-host", "10.0.0.1 -p 2"])
        .error();
    assert_eq!(
        err,
        "bad SSH address `10.0.0.1 -p 2`: must not contain spaces or control characters"
    );
    assert_eq!(home.text(), JSONC);
    assert_eq!(home.files(), ["opencode.jsonc"]);

    // A relative identity file is recorded as the absolute path it means here.
    let keyed = Home::with("opencode.jsonc", JSONC);
    let mut command = Command::new(local_bin());
    command
        .arg("config")
        .args(["add", "default", "keyed", "ops", "22", "keys/id_ed25519"])
        .current_dir(keyed.dir.path());
    let out = run(keyed.isolate(&mut command)).ok();
    assert!(
        out.stderr.contains("recorded as ~/keys/id_ed25519"),
        "{}",
        out.stderr
    );
    assert!(
        keyed
            .text()
            .contains("\"identityFile\": \"~/keys/id_ed25519\""),
        "{}",
        keyed.text()
    );

    let empty = Home::new();
    let err = empty.config_command(&["add", "default", "h", "u"]).error();
    assert_eq!(
        err,
        format!(
            "{} does not exist; create it with `opencode-remote config init` \
             (scripts/opencode-remote-cli.sh init)",
            empty.config().display()
        )
    );
    assert!(!empty.config_dir().exists());
}

#[test]
fn config_commands_should_report_malformed_json_with_its_position() {
    let broken = "{\n  \"plugin\": [\n    \"x\",\n    }\n  ]\n}\n";
    let home = Home::with("opencode.json", broken);
    for args in [
        &["add", "default", "h", "u"][..],
        &["remove", "default", "h"],
        &["init"],
        &["list"],
    ] {
        let err = home.config_command(args).error();
        assert!(
            err.starts_with(&format!(
                "config {} is not valid JSON",
                home.config().display()
            )),
            "{err}"
        );
        assert!(err.contains("line 4 column 5"), "{err}");
    }
    assert_eq!(home.text(), broken);
    assert_eq!(home.files(), ["opencode.json"]);

    // Errors a lenient JSONC reader would let through: a missing comma, single quotes.
    for (broken, position) in [
        (
            "{\n  \"$schema\": \"https://opencode.ai/config.json\"\n  \"plugin\": []\n}\n",
            "line 3 column 3",
        ),
        ("{\n  'plugin': []\n}\n", "line 2 column 3"),
    ] {
        let home = Home::with("opencode.json", broken);
        for args in [&["init"][..], &["add", "default", "h", "u"], &["list"]] {
            let err = home.config_command(args).error();
            assert!(
                err.contains("is not valid JSON") && err.contains(position),
                "{args:?}: {err}"
            );
        }
        assert_eq!(home.text(), broken, "nothing was written");
        assert_eq!(home.files(), ["opencode.json"], "no backup either");
    }
}

#[test]
fn config_remove_should_accept_aliases_and_name_what_exists() {
    let home = Home::with("opencode.jsonc", JSONC);
    let err = home.config_command(&["remove", "prod", "x"]).error();
    assert_eq!(
        err,
        format!(
            "provider `prod` not found in {}; known providers: default, staging",
            home.config().display()
        )
    );
    let err = home.config_command(&["remove", "default", "web9"]).error();
    assert_eq!(
        err,
        "host `web9` not found in provider `default`; known hosts: prod-web-1 (aliases web1)"
    );
    assert_eq!(home.files(), ["opencode.jsonc"]);

    let out = home.config_command(&["remove", "default", "web1"]).ok();
    assert!(
        out.stdout.starts_with(
            "Removed host `prod-web-1` (ops@203.0.113.10:22) (matched by its alias `web1`) from \
             provider `default`"
        ),
        "{}",
        out.stdout
    );
    // The emptied array closes up.
    let expected = JSONC.replace(
        "[
            {
              \"name\": \"prod-web-1\",
              \"aliases\": [\"web1\"], // short
              \"ssh\": { \"host\": \"203.0.113.10\", \"user\": \"ops\", \"port\": 22 },
              \"labels\": [\"linux\", \"production\"],
            },
          ]",
        "[]",
    );
    assert_ne!(expected, JSONC);
    assert_eq!(home.text(), expected);
}

#[test]
fn config_list_should_show_hosts_readably() {
    let home = Home::with("opencode.jsonc", JSONC);
    let out = home.config_command(&["list"]).ok();
    assert_eq!(
        out.stdout,
        format!(
            "Config: {}
Plugin: \"opencode-remote-provider\" (package-based)

provider default (strategy first_available)
  prod-web-1  ops@203.0.113.10:22
      aliases    web1
      labels     linux, production

provider staging (strategy first_available)
  stage-1  deploy@10.1.0.1
",
            home.config().display()
        )
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn config_commands_should_only_read_path_based_entries() {
    let home = Home::with("opencode.json", PATH_BASED);
    let out = home.config_command(&["list"]).ok();
    assert!(
        out.stdout.contains(
            "Plugin: \"/src/opencode-remote/local/plugin\" [read-only: path-based entry; edit the \
             file by hand]"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  vm  me@192.168.1.5"),
        "{}",
        out.stdout
    );
    let expected = format!(
        "{path} registers the plugin by path (\"/src/opencode-remote/local/plugin\"); this CLI only \
         manages package-based entries: edit {path} by hand, or replace that entry with \
         [\"opencode-remote-provider\", {{…options…}}]",
        path = home.config().display()
    );
    for args in [
        &["init"][..],
        &["add", "dev", "vm2", "me"],
        &["remove", "dev", "vm"],
    ] {
        assert_eq!(home.config_command(args).error(), expected);
    }
    assert_eq!(home.text(), PATH_BASED);
    assert_eq!(home.files(), ["opencode.json"]);
}

/// Whether private mount namespaces work here (root, util-linux); skips (or fails when
/// required, as for the sshd tests) otherwise.
fn mount_namespaces() -> bool {
    let works = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|status| status.success());
    if works {
        return true;
    }
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if std::env::var_os("OPENCODE_REMOTE_REQUIRE_SSHD").is_some_and(|v| v == "1") || set("CI") {
        panic!("`unshare -m` is required (root and util-linux) to test failed writes");
    }
    eprintln!("SKIP: `unshare -m` does not work here (needs root)");
    false
}

/// Runs `config add` on `$1/opencode.json` in a private mount namespace, after `setup` (shell)
/// prepared the filesystem at `$1` and copied `original` (`$2`) there. Returns the run, the file
/// afterwards and the names in `$1` afterwards, as seen inside the namespace.
fn add_in_namespace(original: &str, setup: &str) -> (Run, String, String) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("config");
    fs::create_dir(&dir).unwrap();
    let source = work.path().join("source.json");
    fs::write(&source, original).unwrap();
    let report = work.path().join("report");
    fs::create_dir(&report).unwrap();
    let script = format!(
        r#"set -e
{setup}
set +e
CONFIG_FILE="$1/opencode.json" "$3" config add default new-host ops 22
code=$?
cp "$1/opencode.json" "$4/after"
ls -A "$1" > "$4/files"
exit $code"#
    );
    let run = run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&dir)
        .arg(&source)
        .arg(local_bin())
        .arg(&report));
    let after = fs::read_to_string(report.join("after")).unwrap();
    let files = fs::read_to_string(report.join("files")).unwrap();
    (run, after, files)
}

/// A config of two 4 KiB pages: on a 20 KiB tmpfs its backup fits, the new version does not.
fn two_page_config() -> String {
    let config = format!(
        "{{\n  // {}\n  \"plugin\": [\n    [\"opencode-remote-provider\", {{\"providers\": {{\"default\": {{\"hosts\": []}}}}}}]\n  ]\n}}\n",
        "x".repeat(4600)
    );
    assert!(config.len() > 4096 && config.len() < 8192 - 200);
    config
}

const TMPFS_20K: &str = r#"mount -t tmpfs -o size=20k tmpfs "$1"
cp "$2" "$1/opencode.json""#;

const TMPFS_8K: &str = r#"mount -t tmpfs -o size=8k tmpfs "$1"
cp "$2" "$1/opencode.json""#;

#[test]
fn config_add_should_leave_the_config_unchanged_when_the_disk_fills_up() {
    if !mount_namespaces() {
        return;
    }
    let original = two_page_config();
    // The backup (2 pages) is written, then the temporary file runs out of space.
    let (run, after, files) = add_in_namespace(&original, TMPFS_20K);
    let err = run.error();
    assert!(
        err.starts_with("cannot write ") && err.ends_with("No space left on device (os error 28)"),
        "{err}"
    );
    assert_eq!(after, original);
    assert_eq!(
        files, "opencode.json\n",
        "backup or temporary file left behind"
    );

    // No room even for the backup.
    let (run, after, files) = add_in_namespace(&original, TMPFS_8K);
    let err = run.error();
    assert!(err.starts_with("cannot back up "), "{err}");
    assert!(err.contains("(the config was not changed)"), "{err}");
    assert_eq!(after, original);
    assert_eq!(files, "opencode.json\n");
}

#[test]
fn config_add_should_leave_the_config_unchanged_on_a_read_only_filesystem() {
    if !mount_namespaces() {
        return;
    }
    // Root ignores directory permissions (chmod 0555 would not stop it), so make the
    // filesystem itself read-only.
    let (run, after, files) = add_in_namespace(
        JSON,
        r#"cp "$2" "$1/opencode.json"
mount --bind "$1" "$1"
mount -o remount,bind,ro "$1""#,
    );
    let err = run.error();
    assert!(
        err.starts_with("cannot back up ") && err.ends_with("Read-only file system (os error 30)"),
        "{err}"
    );
    assert_eq!(after, JSON);
    assert_eq!(files, "opencode.json\n");
}

#[test]
fn cli_script_should_run_every_config_command() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("custom.jsonc");
    let with_file = |args: &[&str]| {
        let mut command = Command::new(script());
        command
            .args(args)
            .env("OPENCODE_REMOTE_BIN", local_bin())
            .env("CONFIG_FILE", &config);
        run(home.isolate(&mut command).env("CONFIG_FILE", &config))
    };
    let out = with_file(&["init"]).ok();
    assert!(
        out.stdout.contains(&config.display().to_string()),
        "{}",
        out.stdout
    );
    with_file(&[
        "add",
        "default",
        "web-1",
        "ops",
        "2222",
        "/keys/id",
        "--ssh-host",
        "10.0.0.1",
    ])
    .ok();
    with_file(&["add", "default", "web-2", "ops", "--ssh-host=10.0.0.2"]).ok();
    let out = with_file(&["list"]).ok();
    assert!(
        out.stdout.contains(
            "provider default (strategy first_available)
  web-1  ops@10.0.0.1:2222
      identity   /keys/id
  web-2  ops@10.0.0.2
"
        ),
        "{}",
        out.stdout
    );
    with_file(&["remove", "default", "web-1"]).ok();
    let out = with_file(&["list"]).ok();
    assert!(!out.stdout.contains("web-1"), "{}", out.stdout);
    // Values that look like options are still values.
    let err = with_file(&["add", "default", "web-3", "ops", "-1"]).error();
    assert_eq!(err, "bad port `-1`: must be a number from 1 to 65535");
    // Nothing was written to the default location.
    assert!(!home.config_dir().exists());
}

#[test]
fn cli_script_should_print_usage_on_bad_arguments() {
    let home = Home::new();
    for args in [
        &[][..],
        &["frob"],
        &["init", "extra"],
        &["list", "extra"],
        &["add", "p", "h"],
        &["add", "p", "h", "u", "22", "key", "extra"],
        &["add", "p", "h", "u", "--ssh-host"],
        &["add", "p", "h", "u", "--port", "22"],
        &["remove", "p"],
        &["remove", "p", "h", "x"],
        &["setup", "h"],
    ] {
        let out = home.script(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("usage: opencode-remote-cli.sh init\n       opencode-remote-cli.sh add <provider> <host> <user> [port] [identity-file] [--ssh-host ADDR]"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}");
    }
    let out = home.script(&["--help"]).ok();
    assert!(
        out.stdout.contains("setup   install the stub on a host"),
        "{}",
        out.stdout
    );
}

#[test]
fn cli_script_should_find_its_binary_and_hand_setup_to_setup_host() {
    // A copy of the script with the binary next to it and a stand-in setup-host.sh.
    let bin_dir = tempfile::tempdir().unwrap();
    let copy = bin_dir.path().join("opencode-remote-cli.sh");
    fs::copy(script(), &copy).unwrap();
    std::os::unix::fs::symlink(local_bin(), bin_dir.path().join("opencode-remote")).unwrap();
    let setup_host = bin_dir.path().join("setup-host.sh");
    fs::write(
        &setup_host,
        "#!/bin/sh\nprintf 'setup-host:'; printf ' [%s]' \"$@\"; echo\n",
    )
    .unwrap();
    fs::set_permissions(&setup_host, fs::Permissions::from_mode(0o755)).unwrap();

    let home = Home::new();
    let script_run = |args: &[&str]| {
        let mut command = Command::new(&copy);
        command
            .args(args)
            .env_remove("OPENCODE_REMOTE_BIN")
            .env("PATH", "/usr/bin:/bin");
        run(home.isolate(&mut command))
    };
    script_run(&["init"]).ok();
    assert!(home.config().is_file());
    let out = script_run(&["setup", "host.example", "ops", "2222", "/keys/my key"]).ok();
    assert_eq!(
        out.stdout,
        "setup-host: [host.example] [ops] [2222] [/keys/my key]\n"
    );
}
