//! [`Secret`]: the one type credentials travel in, so that printing a config, an auth table or an
//! error can never leak a password, token or key (docs/contract.md §2: secrets never reach logs,
//! errors or any command's output).

use std::fmt;

/// A secret string: `Debug` and `Display` print `[redacted]`; [`Secret::expose`] gives the value.
///
/// There is deliberately no `Serialize`, `Deref` or `AsRef<str>`: every place that needs the
/// value has to say `expose()`, which is easy to audit.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value itself, for building the request that needs it. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}
