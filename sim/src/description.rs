//! Pointing a shipped `rest` description (`config/platforms.d/*-rest-example.toml`) at a
//! simulator: the fleet, the conformance tests and the sync benchmark all read the example files
//! as a sysadmin would copy them, and change only the platform's name, its settings and its
//! credentials.

/// `example` (a platform file declaring one platform) as the platform `name`: its tables
/// renamed; each `key = value` line of `settings` in place of the example's own line for that
/// key in the platform's table, or added after its `kind`; and its `[auth]` table's lines
/// replaced by `auth`.
pub fn adapt(example: &str, name: &str, settings: &str, auth: &str) -> String {
    let key_of = |line: &str| {
        line.split_once('=')
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| !k.starts_with('#') && !k.is_empty())
    };
    let example_name = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("[platforms.")?.strip_suffix(']'))
        .expect("the example declares a platform")
        .to_string();
    let main_table = format!("[platforms.{example_name}]");
    let auth_table = format!("[platforms.{example_name}.auth]");
    let settings: Vec<(String, &str)> = settings
        .lines()
        .filter_map(|l| Some((key_of(l)?, l)))
        .collect();
    let mut table = String::new();
    let mut out = String::new();
    for line in example.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.to_string();
            out.push_str(&line.replacen(
                &format!("[platforms.{example_name}"),
                &format!("[platforms.{name}"),
                1,
            ));
            out.push('\n');
            if table == auth_table {
                out.push_str(auth);
                out.push('\n');
            }
            continue;
        }
        if table == auth_table {
            continue;
        }
        let key = key_of(t);
        let setting = settings
            .iter()
            .find(|(k, _)| table == main_table && Some(k) == key.as_ref());
        match setting {
            Some((_, l)) => out.push_str(l),
            None => out.push_str(line),
        }
        out.push('\n');
        if table == main_table && key.as_deref() == Some("kind") {
            // The settings the example does not set go right after `kind`; those it does set
            // replace its lines further on.
            let later: Vec<String> = example
                .lines()
                .skip_while(|l| l.trim() != main_table)
                .skip(1)
                .take_while(|l| !l.trim().starts_with('['))
                .filter_map(key_of)
                .collect();
            for (k, l) in &settings {
                if !later.contains(k) {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_is_renamed_its_settings_replaced_or_added_and_its_credentials_swapped() {
        let example = "# a comment = here\n[platforms.shop]\nkind = \"rest\"\nbase_url = \"https://x\"\npage_size = 100\n\
                       [platforms.shop.auth]\napi_key = \"replace-me\"\n[platforms.shop.api.list]\npage_size = 7\n";
        let out = adapt(
            example,
            "mine",
            "base_url = \"http://127.0.0.1:1\"\nbackfill_from = \"2024-01-01T00:00:00Z\"\n",
            "api_key = \"real\"",
        );
        assert_eq!(
            out,
            "# a comment = here\n[platforms.mine]\nkind = \"rest\"\nbackfill_from = \"2024-01-01T00:00:00Z\"\n\
             base_url = \"http://127.0.0.1:1\"\npage_size = 100\n[platforms.mine.auth]\napi_key = \"real\"\n\
             [platforms.mine.api.list]\npage_size = 7\n"
        );
    }
}
