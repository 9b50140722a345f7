//! Keeps secrets out of logs, errors and command output. Every credential a platform client
//! builds (the configured secrets, and what is derived from them and sent: Basic credentials,
//! Bearer tokens, MACs) is registered here, and every text that leaves the HTTP layer passes
//! through `redact`.

use std::sync::{Arc, RwLock};

#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor([redacted])")
    }
}

impl Redactor {
    /// Registers a value to hide. Very short values are ignored: hiding "1" would shred every
    /// message while protecting nothing.
    pub fn add(&self, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so a secret that contains another is hidden whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// Unregisters a value given to [`Redactor::add`]. For credentials that live for one request
    /// (a per-request MAC): keeping every one would grow the list, and the cost of each
    /// `redact`, without bound in a long-running daemon.
    pub fn forget(&self, secret: &str) {
        let mut s = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        s.retain(|x| x != secret);
    }

    pub fn redact(&self, text: &str) -> String {
        let s = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// The start of `bytes` as text, at most about `max` bytes of it, every registered secret
    /// hidden. Hiding comes before cutting: a secret cut in two by the limit would no longer be
    /// recognised, and its first half would go out. Bytes that are not UTF-8 become U+FFFD; a
    /// character is never split. `…` marks a cut.
    pub fn redact_head(&self, bytes: &[u8], max: usize) -> String {
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            // Longest first (see `add`), so a secret holding another is hidden whole.
            if let Some(s) = secrets.iter().find(|s| rest.starts_with(s.as_bytes())) {
                if out.len() >= max {
                    break;
                }
                out.push_str(REDACTED);
                i += s.len();
                continue;
            }
            let (c, width) = first_char(rest);
            if out.len() + c.len_utf8() > max {
                break;
            }
            out.push(c);
            i += width;
        }
        if i < bytes.len() {
            out.push('…');
        }
        out
    }
}

const REDACTED: &str = "[redacted]";

/// The first character of `bytes` and how many bytes it takes; U+FFFD for one byte that does not
/// start a valid character.
fn first_char(bytes: &[u8]) -> (char, usize) {
    let head = &bytes[..bytes.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    match valid.chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_never_survive_redaction() {
        let r = Redactor::default();
        r.add("hunter22");
        r.add("hunter22-long");
        assert_eq!(
            r.redact("token hunter22-long and hunter22"),
            "token [redacted] and [redacted]"
        );
    }

    #[test]
    fn a_head_is_redacted_before_it_is_cut_so_no_half_secret_survives() {
        let r = Redactor::default();
        r.add("SEKRIT-MPSECRET-1234");
        let body = b"<html>secret=SEKRIT-MPSECRET-1234&next=1</html>";
        // The limit falls inside the secret.
        assert_eq!(r.redact_head(body, 20), "<html>secret=[redacted]…");
        assert_eq!(r.redact_head(body, 12), "<html>secret…");
        assert_eq!(r.redact_head(b"short", 60), "short");
        // Never inside a character, and bytes that are not UTF-8 are replaced, not dropped.
        assert_eq!(r.redact_head("aé".as_bytes(), 2), "a…");
        assert_eq!(r.redact_head(b"a\xffb", 60), "a\u{FFFD}b");
    }
}
