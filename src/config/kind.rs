//! What the configuration needs to know about a platform kind, as data: its name, its auth keys
//! (and which of them are secrets), the combinations of keys that complete an auth table,
//! whether its list filter sees updates, and the actions it can push.
//!
//! The kinds themselves live in `platforms/<kind>/`, each with one descriptor holding its
//! [`KindSpec`]; the platforms layer hands the list to [`load`](super::load) as [`Kinds`]. The
//! configuration sits below the platforms and so never names a kind itself: a new kind is
//! validated by the same code as the built-in ones.

use std::fmt;
use std::hash::{Hash, Hasher};

/// One auth key a kind understands (each may also be given as `<key>_file`).
#[derive(Debug)]
pub struct AuthKey {
    pub name: &'static str,
    /// Whether the value authenticates (and is hidden from every log line and record) or only
    /// identifies, like a partner id or a user name.
    pub secret: bool,
}

impl AuthKey {
    pub const fn secret(name: &'static str) -> AuthKey {
        AuthKey { name, secret: true }
    }

    pub const fn public(name: &'static str) -> AuthKey {
        AuthKey {
            name,
            secret: false,
        }
    }
}

/// The facts about a kind that configuration, validation and the outbox's refusals read.
#[derive(Debug)]
pub struct KindSpec {
    /// The `kind = "…"` value, lower case.
    pub name: &'static str,
    pub auth_keys: &'static [AuthKey],
    /// The accepted combinations of auth keys: the auth table is complete when every key of at
    /// least one combination is given.
    pub auth_requirements: &'static [&'static [&'static str]],
    /// Whether the list endpoint filters by update time. Kinds that cannot need a reconcile
    /// pass to notice status changes on old orders, so they get a reconcile schedule by default.
    pub sees_updates: bool,
    /// The canonical actions `transition` may queue for this kind; empty for read-only kinds.
    pub push_actions: &'static [&'static str],
    /// Whether each platform of the kind describes its API in `[platforms.<name>.api]` (the
    /// `rest` kind) instead of the kind knowing it. Such a platform's description also says
    /// whether its filter sees updates and what it can push, overriding the two fields above.
    pub described: bool,
}

/// A platform kind: a cheap handle on its [`KindSpec`], compared by name.
#[derive(Clone, Copy)]
pub struct Kind(&'static KindSpec);

impl Kind {
    pub const fn new(spec: &'static KindSpec) -> Kind {
        Kind(spec)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn spec(self) -> &'static KindSpec {
        self.0
    }

    /// See [`KindSpec::sees_updates`].
    pub fn has_updated_filter(self) -> bool {
        self.0.sees_updates
    }

    /// The `[platforms.<name>.auth]` keys this kind understands.
    pub fn auth_keys(self) -> impl Iterator<Item = &'static str> {
        self.0.auth_keys.iter().map(|k| k.name)
    }

    /// See [`KindSpec::auth_requirements`].
    pub fn auth_requirements(self) -> &'static [&'static [&'static str]] {
        self.0.auth_requirements
    }

    /// Whether `key`'s value must be kept out of logs and records. A key the kind does not
    /// declare counts as secret: hiding too much is the safe mistake.
    pub fn is_secret(self, key: &str) -> bool {
        self.0
            .auth_keys
            .iter()
            .find(|k| k.name == key)
            .is_none_or(|k| k.secret)
    }

    pub fn push_actions(self) -> &'static [&'static str] {
        self.0.push_actions
    }

    /// See [`KindSpec::described`].
    pub fn is_described(self) -> bool {
        self.0.described
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Kind {}

impl Hash for Kind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state)
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Kind) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kind {
    fn cmp(&self, other: &Kind) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.0.name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

/// The kinds this build knows, in the order messages list them.
#[derive(Clone, Copy, Debug)]
pub struct Kinds(pub &'static [Kind]);

impl Kinds {
    /// The kind named `name` (case-insensitive, surrounding blanks ignored).
    pub fn find(self, name: &str) -> Result<Kind, UnknownKind> {
        let lower = name.trim().to_ascii_lowercase();
        self.0
            .iter()
            .copied()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| UnknownKind {
                given: name.to_string(),
                known: self.names(),
                described: self.0.iter().find(|k| k.is_described()).map(|k| k.as_str()),
            })
    }

    /// The known kinds' names, comma-separated, for messages.
    pub fn names(self) -> String {
        let names: Vec<&str> = self.0.iter().map(|k| k.as_str()).collect();
        names.join(", ")
    }
}

/// A `kind` this build does not know; the message lists the known kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind {
    pub given: String,
    pub known: String,
    /// The kind whose platforms describe their own API, offered for a platform nobody built in.
    pub described: Option<&'static str>,
}

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kind `{}` (known kinds: {})",
            self.given, self.known
        )?;
        if let Some(d) = self.described {
            write!(
                f,
                "; a platform none of them speaks can be described with kind = \"{d}\" and an \
                 [platforms.<name>.api] table"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownKind {}
