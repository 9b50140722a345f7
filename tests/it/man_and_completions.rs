//! The man page and the shell completions the `.deb` installs: the copies under `contrib/` are
//! exactly what the CLI generates, `man` renders the page with every subcommand and option in
//! it, and real bash, zsh and fish load the completions and offer the subcommands.

use std::path::{Path, PathBuf};
use std::process::Command;

use ordersync::cli::generate::{self, Asset};

fn contrib(asset: Asset) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(asset.path())
}

/// `ordersync sync`, `ordersync outbox retry`, … for every subcommand a user can type.
fn subcommand_paths() -> Vec<String> {
    generate::visible_subcommands(&generate::command())
        .iter()
        .map(|c| c.get_bin_name().unwrap_or(c.get_name()).to_string())
        .collect()
}

/// Every `--long` option of every visible subcommand, and the top-level ones.
fn long_options() -> Vec<String> {
    let cmd = generate::command();
    let mut all: Vec<&clap::Command> = vec![&cmd];
    all.extend(generate::visible_subcommands(&cmd));
    let mut longs: Vec<String> = all
        .iter()
        .flat_map(|c| c.get_arguments())
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect();
    longs.sort();
    longs.dedup();
    longs
}

fn top_level_subcommands() -> Vec<String> {
    generate::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn the_shipped_man_page_and_completions_are_what_the_cli_generates() {
    for asset in Asset::ALL {
        let path = contrib(asset);
        let shipped = std::fs::read(&path).unwrap_or_default();
        assert!(
            shipped == asset.render(),
            "{} is not what the CLI generates: run `cargo run -- generate --out contrib` and \
             commit the result",
            path.display()
        );
    }
}

#[test]
fn man_renders_the_page_with_every_subcommand_and_option_in_it() {
    let page = contrib(Asset::Man);
    // groff's own checks: any warning means a construct man will show wrongly.
    let lint = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .expect("groff runs (apt-get install groff-base)");
    assert!(
        lint.status.success() && lint.stderr.is_empty(),
        "groff warns about {}:\n{}",
        page.display(),
        String::from_utf8_lossy(&lint.stderr)
    );
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env_remove("MAN_KEEP_FORMATTING")
        .output()
        .expect("man runs (apt-get install man-db)");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let text = crate::common::stdout(&out);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
    ] {
        assert!(lines.contains(&section), "no {section} section in:\n{text}");
    }
    // Headings and option tags are never filled or hyphenated, so each stands whole on a line.
    for sub in subcommand_paths() {
        assert!(lines.contains(&sub.as_str()), "no `{sub}` in:\n{text}");
    }
    for long in long_options() {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&long) || l.contains(&format!(", {long}"))),
            "option {long} is not described in:\n{text}"
        );
    }
}

#[test]
fn bash_completes_every_subcommand_and_a_subcommands_options() {
    let script = contrib(Asset::Bash);
    let complete = |words: &str| -> Vec<String> {
        let out = Command::new("bash")
            .arg("--norc")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _ordersync ordersync \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::common::stderr(&out));
        crate::common::stdout(&out)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let offered = complete("ordersync ''");
    for sub in top_level_subcommands() {
        assert!(
            offered.contains(&sub),
            "bash does not offer `{sub}`: {offered:?}"
        );
    }
    let offered = complete("ordersync sync --");
    for opt in ["--full", "--no-reconcile", "--config"] {
        assert!(
            offered.contains(&opt.to_string()),
            "bash does not offer `sync {opt}`: {offered:?}"
        );
    }
}

#[test]
fn fish_completes_every_subcommand() {
    let script = contrib(Asset::Fish);
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(format!(
            "source {}; complete -C'ordersync '; complete -C'ordersync outbox '",
            script.display()
        ))
        .output()
        .expect("fish runs (apt-get install fish)");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let offered: Vec<String> = crate::common::stdout(&out)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect();
    let mut want = top_level_subcommands();
    want.extend(["retry".to_string(), "cancel".to_string()]);
    for sub in want {
        assert!(
            offered.contains(&sub),
            "fish does not offer `{sub}`: {offered:?}"
        );
    }
}

#[test]
fn zsh_loads_the_completion_function() {
    let script = contrib(Asset::Zsh);
    let dir = script.parent().unwrap();
    // compinit registers `_ordersync` for `ordersync` from its #compdef line, found on fpath.
    let out = Command::new("zsh")
        .args(["-f", "-c"])
        .arg(format!(
            "fpath=({} $fpath); autoload -Uz compinit; compinit -u -D; \
             print -r -- ${{_comps[ordersync]}}",
            dir.display()
        ))
        .output()
        .expect("zsh runs (apt-get install zsh)");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert_eq!(crate::common::stdout(&out).trim(), "_ordersync");
    let text = std::fs::read_to_string(&script).unwrap();
    for sub in top_level_subcommands() {
        assert!(
            text.contains(&format!("'{sub}:")),
            "the zsh function does not list `{sub}`"
        );
    }
}
