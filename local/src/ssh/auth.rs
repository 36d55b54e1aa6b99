//! Authentication: ssh-agent keys, identity files, and (only with a person at the terminal)
//! passwords and keyboard-interactive prompts.

use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};

use super::client::Client;
use super::known_hosts;
use super::terminal;
use super::{SshError, Target};

/// Authenticates: ssh-agent keys, then identity files, then (only when a person is at the
/// terminal) password or keyboard-interactive. Returns how it succeeded, for messages.
pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    target: &Target,
) -> Result<String, SshError> {
    let mut tried: Vec<String> = Vec::new();
    let protocol_error = |source: russh::Error| SshError::Protocol {
        host: target.host.clone(),
        port: target.port,
        source,
    };
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(protocol_error)?
        .flatten();
    let mut methods: Option<russh::MethodSet> = None;

    let wanted_pubkeys: Vec<PublicKey> = target
        .identity_files
        .iter()
        .filter_map(|path| {
            let mut pub_path = path.clone().into_os_string();
            pub_path.push(".pub");
            std::fs::read_to_string(pub_path)
                .ok()
                .and_then(|text| PublicKey::from_openssh(text.trim()).ok())
        })
        .collect();

    if let Some(sock) = &target.agent {
        match russh::keys::agent::client::AgentClient::connect_uds(sock).await {
            Ok(mut agent) => match agent.request_identities().await {
                Ok(identities) => {
                    for identity in identities {
                        let key = identity.public_key().into_owned();
                        if target.identities_only
                            && !wanted_pubkeys
                                .iter()
                                .any(|k| k.key_data() == key.key_data())
                        {
                            continue;
                        }
                        let fingerprint = known_hosts::fingerprint(&key);
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash
                        } else {
                            None
                        };
                        match handle
                            .authenticate_publickey_with(target.user.clone(), key, hash, &mut agent)
                            .await
                        {
                            Ok(client::AuthResult::Success) => {
                                return Ok(format!("agent key {fingerprint}"));
                            }
                            Ok(client::AuthResult::Failure {
                                remaining_methods, ..
                            }) => {
                                methods = Some(remaining_methods);
                                tried.push(format!("agent key {fingerprint} (rejected)"));
                            }
                            Err(err) => {
                                tried.push(format!("agent key {fingerprint} (agent error: {err})"))
                            }
                        }
                    }
                }
                Err(err) => tried.push(format!(
                    "ssh-agent at {} (cannot list keys: {err})",
                    sock.display()
                )),
            },
            Err(err) => tried.push(format!(
                "ssh-agent at {} (unreachable: {err})",
                sock.display()
            )),
        }
    }

    let mut encrypted = Vec::new();
    for path in &target.identity_files {
        let shown = path.display();
        if !path.exists() {
            if target.explicit_identity {
                tried.push(format!("{shown} (missing)"));
            }
            continue;
        }
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(key) => key,
            Err(russh::keys::Error::KeyIsEncrypted) if target.interactive => {
                let prompt = format!("Enter passphrase for key '{shown}': ");
                let passphrase = terminal::password(&prompt).map_err(|err| {
                    SshError::Exec(format!(
                        "cannot read the passphrase from the terminal: {err}"
                    ))
                })?;
                match russh::keys::load_secret_key(path, Some(&passphrase)) {
                    Ok(key) => key,
                    Err(err) => {
                        tried.push(format!("{shown} (cannot decrypt: {err})"));
                        continue;
                    }
                }
            }
            Err(russh::keys::Error::KeyIsEncrypted) => {
                tried.push(format!("{shown} (encrypted; not in the agent)"));
                encrypted.push(path.clone());
                continue;
            }
            Err(err) => {
                tried.push(format!("{shown} (unreadable: {err})"));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle
            .authenticate_publickey(target.user.clone(), key)
            .await
        {
            Ok(client::AuthResult::Success) => return Ok(format!("key {shown}")),
            Ok(client::AuthResult::Failure {
                remaining_methods, ..
            }) => {
                methods = Some(remaining_methods);
                tried.push(format!("{shown} (rejected)"));
            }
            Err(err) => return Err(protocol_error(err)),
        }
    }

    if methods.is_none() {
        // Nothing offered a key: ask which methods exist at all.
        if let Ok(client::AuthResult::Failure {
            remaining_methods, ..
        }) = handle.authenticate_none(target.user.clone()).await
        {
            methods = Some(remaining_methods);
        }
    }
    let offers = |kind: russh::MethodKind| methods.as_ref().is_some_and(|m| m.contains(&kind));
    let password_possible =
        offers(russh::MethodKind::Password) || offers(russh::MethodKind::KeyboardInteractive);
    if target.interactive && password_possible {
        // Like OpenSSH: keyboard-interactive first (it carries PAM's own prompts, one-time
        // codes included), then password.
        for attempt in 1..=3 {
            if offers(russh::MethodKind::KeyboardInteractive) {
                if keyboard_interactive(handle, target).await? {
                    return Ok("keyboard-interactive".into());
                }
                tried.push(format!(
                    "keyboard-interactive (attempt {attempt}, rejected)"
                ));
            } else {
                let prompt = format!("{}@{}'s password: ", target.user, target.host);
                let password = terminal::password(&prompt).map_err(terminal_error)?;
                match handle
                    .authenticate_password(target.user.clone(), password)
                    .await
                {
                    Ok(client::AuthResult::Success) => return Ok("password".into()),
                    Ok(_) => tried.push(format!("password (attempt {attempt}, rejected)")),
                    Err(err) => return Err(protocol_error(err)),
                }
            }
        }
    }

    let mut hint = String::new();
    if !encrypted.is_empty() {
        hint.push_str(&format!(
            ". Encrypted keys need ssh-agent: run `ssh-add {}`",
            encrypted
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if let Some(methods) = &methods {
        let names: Vec<&str> = methods.iter().map(<&str>::from).collect();
        hint.push_str(&format!(". The server accepts: {}", names.join(", ")));
        if password_possible && !target.interactive {
            hint.push_str(&format!(
                ". Password logins need a person at a terminal: run `scripts/setup-host.sh {} {} {}` once to install a key",
                target.alias, target.user, target.port
            ));
        }
    }
    if tried.is_empty() {
        tried.push("nothing (no agent, no identity files)".into());
    }
    Err(SshError::Auth {
        user: target.user.clone(),
        host: target.host.clone(),
        port: target.port,
        tried: tried.join(", "),
        hint,
        password_possible,
    })
}

fn terminal_error(err: std::io::Error) -> SshError {
    SshError::Exec(format!("cannot read an answer from the terminal: {err}"))
}

/// One keyboard-interactive exchange at the terminal: shows what the server sends (its name,
/// instructions and each prompt, prefixed with `(user@host)` as OpenSSH does) and sends back
/// what the person types, echoed only where the server asks for echo. `Ok(false)` when the
/// server rejects the answers.
async fn keyboard_interactive(
    handle: &mut Handle<Client>,
    target: &Target,
) -> Result<bool, SshError> {
    let protocol_error = |source: russh::Error| SshError::Protocol {
        host: target.host.clone(),
        port: target.port,
        source,
    };
    let mut response = handle
        .authenticate_keyboard_interactive_start(target.user.clone(), None)
        .await
        .map_err(protocol_error)?;
    // Servers may send several rounds (password, then a one-time code; empty rounds too), but
    // not forever.
    for _ in 0..10 {
        match response {
            client::KeyboardInteractiveAuthResponse::Success => return Ok(true),
            client::KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            client::KeyboardInteractiveAuthResponse::InfoRequest {
                name,
                instructions,
                prompts,
            } => {
                for text in [&name, &instructions] {
                    if !text.trim().is_empty() {
                        terminal::say(text.trim_end()).map_err(terminal_error)?;
                    }
                }
                let mut answers = Vec::with_capacity(prompts.len());
                for prompt in &prompts {
                    let shown = format!("({}@{}) {}", target.user, target.host, prompt.prompt);
                    let answer = if prompt.echo {
                        terminal::line(&shown)
                    } else {
                        terminal::password(&shown)
                    };
                    answers.push(answer.map_err(terminal_error)?);
                }
                response = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(protocol_error)?;
            }
        }
    }
    Ok(false)
}
