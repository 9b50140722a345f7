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
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
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
}
