//! Finding and layering the configuration inputs: the main file, every `*.toml` in
//! `platforms_dir` in name order, then `ORDERSYNC_*` environment variables, merged with figment
//! so that every value keeps a tag naming where it came from. Also owns the file-level rules:
//! unreadable or malformed files, what a platform file may hold, one declaration per platform,
//! and how an environment variable's platform segment finds its platform.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::ConfigError;

const ENV_PREFIX: &str = "ORDERSYNC_";
const ENV_ORIGIN_PREFIX: &str = "environment variable ";

/// Everything [`super::validate`] needs: the merged tree with its sources.
pub(crate) struct Gathered {
    pub figment: Figment,
    /// The merged tree (default profile), values tagged with their source.
    pub root: Dict,
    /// Absolute.
    pub main_file: PathBuf,
    /// The main file's folder: relative paths in the configuration are relative to it.
    pub base_dir: PathBuf,
    /// Platform name → the file whose `[platforms.<name>]` declared it.
    pub declared: BTreeMap<String, PathBuf>,
    /// File-level problems (unreadable, malformed, misplaced tables, stray variables).
    pub errors: Vec<ConfigError>,
}

impl Gathered {
    /// The file path or `environment variable NAME` a merged value came from.
    pub fn origin(&self, value: &Value) -> String {
        origin_of(&self.figment, value.tag())
            .unwrap_or_else(|| self.main_file.display().to_string())
    }

    /// Whether the value was set by an environment variable (which then wins over the other
    /// spelling of the same auth key in a file).
    pub fn is_from_env(&self, value: &Value) -> bool {
        self.env_var(value).is_some()
    }

    /// The environment variable that set the value, if one did.
    pub fn env_var(&self, value: &Value) -> Option<String> {
        origin_of(&self.figment, value.tag())
            .and_then(|o| o.strip_prefix(ENV_ORIGIN_PREFIX).map(str::to_string))
    }
}

fn origin_of(figment: &Figment, tag: Tag) -> Option<String> {
    let md = figment.get_metadata(tag)?;
    Some(match md.source.as_ref() {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ => md.name.to_string(),
    })
}

/// Whether an environment variable is meant for the configuration (as opposed to naming it).
pub(crate) fn is_config_var(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with(ENV_PREFIX) && upper != super::CONFIG_ENV_VAR
}

/// One `ORDERSYNC_*` variable as its own figment provider.
///
/// figment's `Env` provider reads only the process environment (tests pass their own), names
/// every variable "environment variable(s)" in metadata, and parses values (`"00123"` would
/// become the number 123, ruining a token). One provider per variable gives each value a tag
/// naming its exact variable, and values stay text; the validator converts text where a
/// number, boolean or duration is expected.
#[derive(Debug, Clone)]
struct EnvVar {
    name: String,
    /// Lower-cased key segments, split at `__`.
    path: Vec<String>,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("{ENV_ORIGIN_PREFIX}{}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut value = Value::String(Tag::Default, self.value.clone());
        for segment in self.path.iter().rev() {
            let mut dict = Dict::new();
            dict.insert(segment.clone(), value);
            value = Value::Dict(Tag::Default, dict);
        }
        let dict = value.into_dict().unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

fn env_origin(name: &str) -> String {
    format!("{ENV_ORIGIN_PREFIX}{name}")
}

/// Reads the inputs. `Err` only when the main file itself cannot be read: then nothing else is
/// worth reporting.
pub(crate) fn gather(
    main_file: &Path,
    env: &[(String, String)],
) -> Result<Gathered, Vec<ConfigError>> {
    let main_file = std::path::absolute(main_file).unwrap_or_else(|_| main_file.to_path_buf());
    let base_dir = match main_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut errors = Vec::new();

    if let Err(e) = std::fs::read(&main_file) {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "the main configuration file does not exist ({e}); give another with --config \
                 or {}",
                super::CONFIG_ENV_VAR
            )
        } else {
            format!("cannot read the main configuration file: {e}")
        };
        return Err(vec![ConfigError::new(
            main_file.display().to_string(),
            "",
            message,
        )]);
    }
    let main_dict = parse_file(&main_file, &mut errors);

    let env_vars = parse_env(env, &mut errors);

    // `platforms_dir` decides which files to read, so it comes from a first figment of the main
    // file and the environment only.
    let mut first = Figment::new();
    if main_dict.is_some() {
        first = first.merge(Toml::file_exact(&main_file));
    }
    for var in &env_vars {
        first = first.merge(var.clone());
    }
    let platforms_dir = match first.find_value("daemon.platforms_dir") {
        Ok(Value::String(_, s)) if !s.trim().is_empty() => base_dir.join(s.trim()),
        _ => base_dir.join(super::DaemonConfig::default().platforms_dir),
    };

    let mut declared: BTreeMap<String, PathBuf> = BTreeMap::new();
    if let Some(dict) = &main_dict {
        declare(&main_file, dict, &mut declared, &mut errors);
    }

    let mut platform_files = Vec::new();
    for file in list_platform_files(&platforms_dir, &mut errors) {
        let Some(dict) = parse_file(&file, &mut errors) else {
            continue;
        };
        if check_platform_file(&file, &main_file, &dict, &mut errors) {
            declare(&file, &dict, &mut declared, &mut errors);
            platform_files.push(file);
        }
    }

    let mut figment = Figment::new();
    if main_dict.is_some() {
        figment = figment.merge(Toml::file_exact(&main_file));
    }
    for file in &platform_files {
        figment = figment.merge(Toml::file_exact(file));
    }
    for mut var in env_vars {
        if var.path.len() >= 2 && var.path[0] == "platforms" {
            match resolve_platform(&var.path[1], &declared) {
                Ok(name) => var.path[1] = name,
                Err(message) => {
                    let key = format!("platforms.{}", var.path[1]);
                    errors.push(ConfigError::new(env_origin(&var.name), key, message));
                    continue;
                }
            }
        }
        figment = figment.merge(var);
    }

    // The files parsed a moment ago; a failure here means one changed underneath us.
    let root = match figment.data() {
        Ok(mut map) => map.remove(&Profile::Default).unwrap_or_default(),
        Err(e) => {
            errors.push(ConfigError::new(
                main_file.display().to_string(),
                "",
                flatten(&e.to_string()),
            ));
            Dict::new()
        }
    };

    Ok(Gathered {
        figment,
        root,
        main_file,
        base_dir,
        declared,
        errors,
    })
}

/// Reads one TOML file with figment; `None` (and an error naming the file) when it cannot.
fn parse_file(path: &Path, errors: &mut Vec<ConfigError>) -> Option<Dict> {
    let file = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                errors.push(ConfigError::new(
                    file,
                    "",
                    "not a text file (invalid UTF-8)",
                ));
                return None;
            }
        },
        Err(e) => {
            errors.push(ConfigError::new(file, "", format!("cannot read: {e}")));
            return None;
        }
    };
    match Figment::from(Toml::file_exact(path)).data() {
        Ok(mut map) => Some(map.remove(&Profile::Default).unwrap_or_default()),
        Err(e) => {
            errors.push(ConfigError::new(
                file,
                "",
                toml_error(&text, &e.to_string()),
            ));
            None
        }
    }
}

/// A one-line TOML syntax error with its line and column. The `toml` crate is asked again for
/// the span because figment only passes on a multi-line rendering that quotes the offending
/// line, which may hold a secret.
fn toml_error(text: &str, figment_message: &str) -> String {
    match toml::from_str::<toml::Table>(text) {
        Err(e) => {
            let message = e.message().trim().trim_end_matches('.');
            match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("invalid TOML at line {line}, column {column}: {message}")
                }
                None => format!("invalid TOML: {message}"),
            }
        }
        // The two TOML parsers disagree (figment's is older); its first line still has the
        // position.
        Ok(_) => format!(
            "invalid TOML: {}",
            figment_message.lines().next().unwrap_or(figment_message)
        ),
    }
}

fn flatten(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `*.toml` files in the platforms directory, in name order. A missing directory means no
/// platforms; one that exists but cannot be listed is an error. Hidden files are skipped:
/// editors leave lock files like `.#shop.toml` beside the file being edited.
pub(crate) fn list_platform_files(dir: &Path, errors: &mut Vec<ConfigError>) -> Vec<PathBuf> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(ConfigError::new(
                shown,
                "",
                format!("cannot read the platforms directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(ConfigError::new(
                    shown.clone(),
                    "",
                    format!("cannot read the platforms directory: {e}"),
                ));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".toml") || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: configuration management often links files into place.
        match std::fs::metadata(&path) {
            Ok(md) if md.is_file() => files.push(path),
            Ok(_) => {}
            Err(e) => errors.push(ConfigError::new(
                path.display().to_string(),
                "",
                format!("cannot read: {e}"),
            )),
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// A platform file holds only `[platforms.<name>]` tables: a `[daemon]` or `[defaults]` there
/// would silently change every platform. Returns whether the file can be merged at all (a
/// `platforms` that is not a table would wipe out every platform declared before it).
fn check_platform_file(
    file: &Path,
    main_file: &Path,
    dict: &Dict,
    errors: &mut Vec<ConfigError>,
) -> bool {
    let shown = file.display().to_string();
    let mut ok = true;
    for (key, value) in dict {
        if key == "platforms" {
            if !matches!(value, Value::Dict(..)) {
                errors.push(ConfigError::new(
                    shown.clone(),
                    key.clone(),
                    "expected tables like [platforms.<name>]",
                ));
                ok = false;
            }
        } else {
            errors.push(ConfigError::new(
                shown.clone(),
                key.clone(),
                format!(
                    "a platform file holds only [platforms.<name>] tables; `{key}` belongs in the \
                     main file {}",
                    main_file.display()
                ),
            ));
        }
    }
    ok
}

/// Records the platforms a file declares; a platform declared by two files is an error, since
/// merging them key by key would hide which file is in charge.
fn declare(
    file: &Path,
    dict: &Dict,
    declared: &mut BTreeMap<String, PathBuf>,
    errors: &mut Vec<ConfigError>,
) {
    let Some(Value::Dict(_, platforms)) = dict.get("platforms") else {
        return;
    };
    for name in platforms.keys() {
        match declared.get(name) {
            Some(first) => errors.push(ConfigError::new(
                file.display().to_string(),
                format!("platforms.{name}"),
                format!(
                    "platform `{name}` is already declared in {}; declare each platform in one \
                     file",
                    first.display()
                ),
            )),
            None => {
                declared.insert(name.clone(), file.to_path_buf());
            }
        }
    }
}

/// `ORDERSYNC_A__B__C=v` → key path `a.b.c`. Malformed names are errors, as a misspelt variable
/// must not be silently ignored.
fn parse_env(env: &[(String, String)], errors: &mut Vec<ConfigError>) -> Vec<EnvVar> {
    let mut vars = Vec::new();
    for (name, value) in env {
        if !is_config_var(name) {
            continue;
        }
        let rest = &name[ENV_PREFIX.len()..];
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|s| s.is_empty()) {
            errors.push(ConfigError::new(
                env_origin(name),
                "",
                "cannot be read as a key: separate levels with a double underscore, as in \
                 ORDERSYNC_DAEMON__LOG_LEVEL or ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET",
            ));
            continue;
        }
        vars.push(EnvVar {
            name: name.clone(),
            path,
            value: value.clone(),
        });
    }
    // Deterministic layering whatever order the environment came in.
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// Environment variable names cannot hold `-`, so `_` in a variable's platform segment also
/// matches `-` in a declared name. Only platforms declared in a file can be overridden: a
/// variable naming no platform is almost certainly a typo.
fn resolve_platform(segment: &str, declared: &BTreeMap<String, PathBuf>) -> Result<String, String> {
    if declared.contains_key(segment) {
        return Ok(segment.to_string());
    }
    let matches: Vec<&String> = declared
        .keys()
        .filter(|name| name.replace('-', "_") == segment)
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            Err(format!(
                "no platform `{segment}` is declared in a file; an environment variable can only \
                 override a declared platform (declared: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            Err(format!(
                "matches more than one platform ({}); rename one of them",
                names.join(", ")
            ))
        }
    }
}
