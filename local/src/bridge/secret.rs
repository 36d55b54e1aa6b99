//! The per-launch secret that guards the loopback URL: only requests whose path starts with
//! `/<secret>` are served.

/// The per-launch secret path prefix.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// 256 random bits, hex encoded.
    ///
    /// # Errors
    ///
    /// When the OS has no randomness to give.
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Uses a secret chosen elsewhere (the plugin keeps a workspace's URL across restarts).
    /// Must be at least 32 URL-safe characters.
    pub fn from_string(secret: String) -> Option<Secret> {
        let ok = secret.len() >= 32
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then_some(Secret(secret))
    }

    /// The secret itself (goes into the URL handed to OpenCode, never into logs).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Strips `/<secret>` from `path`, in constant time with respect to the secret's content.
    /// `None` for every other path, whatever bytes it holds.
    pub fn strip<'a>(&self, path: &'a str) -> Option<&'a str> {
        let expected = self.0.as_bytes();
        let bytes = path.as_bytes();
        let candidate = bytes.get(1..1 + expected.len())?;
        let same = (bytes.first() == Some(&b'/'))
            & (candidate
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0);
        // Not `&path[…]`: the byte after a would-be prefix can sit inside a multi-byte
        // character (which also means the prefix did not match, as the secret is ASCII).
        let rest = path.get(1 + expected.len()..)?;
        (same && (rest.is_empty() || rest.starts_with('/'))).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_should_strip_only_its_own_prefix() {
        let secret = Secret::from_string("a".repeat(64)).unwrap();
        let prefix = format!("/{}", "a".repeat(64));
        assert_eq!(secret.strip(&prefix), Some(""));
        assert_eq!(
            secret.strip(&format!("{prefix}/global/health")),
            Some("/global/health")
        );
        assert_eq!(secret.strip(&format!("{prefix}x/global/health")), None);
        assert_eq!(secret.strip(&format!("/{}/x", "b".repeat(64))), None);
        assert_eq!(secret.strip("/global/health"), None);
        assert_eq!(secret.strip(""), None);
        assert_eq!(secret.strip(&prefix[..20]), None);
    }

    #[test]
    fn strip_should_refuse_any_bad_path_without_panicking() {
        let secret = Secret::from_string("a".repeat(64)).unwrap();
        let prefix = format!("/{}", "a".repeat(64));
        let near = &prefix[..64];
        let bad = [
            // A multi-byte character across the end of the prefix, or right after it.
            format!("{near}é/global/health"),
            format!("{near}€"),
            format!("{prefix}é"),
            format!("/{}", "é".repeat(40)),
            format!("{}é", &prefix[..1]),
            // Percent-encoded slashes and prefixes are not the prefix.
            format!("{prefix}%2Fglobal/health"),
            format!("%2F{}", "a".repeat(64)),
            format!("/{}%61", "a".repeat(63)),
            // Overlong, and the secret without its slash.
            format!("{prefix}{}", "x".repeat(1 << 16)),
            "a".repeat(65),
        ];
        for path in &bad {
            assert_eq!(secret.strip(path), None, "{path:.80}");
        }
        let long = format!("{prefix}/{}", "é".repeat(1 << 15));
        assert_eq!(secret.strip(&long), Some(&long[65..]));
    }

    #[test]
    fn secret_should_be_random_and_long() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(Secret::from_string("short".into()).is_none());
        assert!(Secret::from_string(format!("{}/", "a".repeat(40))).is_none());
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }
}
