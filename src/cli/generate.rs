//! `ordersync generate`: the man page and the bash, zsh and fish completions, rendered from the
//! clap definitions so they cannot drift from the parser. The copies under `contrib/` are what
//! the `.deb` installs; a test regenerates them and fails when they differ.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, ValueEnum};
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};

use super::{Cli, Exit};

/// One generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Asset {
    /// The man page, ordersync(1), in roff
    Man,
    /// The bash completion script
    Bash,
    /// The zsh completion function
    Zsh,
    /// The fish completion script
    Fish,
}

impl Asset {
    pub const ALL: [Asset; 4] = [Asset::Man, Asset::Bash, Asset::Zsh, Asset::Fish];

    /// Where the file lives under `contrib/` (and under `--out DIR`).
    pub fn path(self) -> &'static str {
        match self {
            Asset::Man => "man/ordersync.1",
            Asset::Bash => "completions/ordersync.bash",
            Asset::Zsh => "completions/_ordersync",
            Asset::Fish => "completions/ordersync.fish",
        }
    }

    pub fn render(self) -> Vec<u8> {
        match self {
            Asset::Man => man_page(),
            Asset::Bash => completion(Shell::Bash),
            Asset::Zsh => completion(Shell::Zsh),
            Asset::Fish => completion(Shell::Fish),
        }
    }
}

/// The parser's command tree, built (global options propagated, bin names set).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ordersync", &mut out);
    out
}

const DESCRIPTION: &str = "\
ordersync polls the order lists of e-commerce platforms (sirclo, akinon, mitrabunso, merchantpro, \
epixel) on cron schedules, stores every order and every change to it in a SQLite database, and \
pushes order status transitions back to the platforms through a durable outbox.

ordersync run is the daemon, normally started by systemd as ordersync.service. The other commands \
read or act on the same configuration and database and may run beside the daemon: the database is \
in WAL mode, and a manual sync waits for the daemon's run of the same platform.";

/// One page for the whole program: the top-level sections as clap_mangen renders them, then
/// every visible subcommand as a subsection of COMMANDS (clap_mangen alone would point at one
/// page per subcommand, which a single installed page cannot honour).
pub fn man_page() -> Vec<u8> {
    let cmd = Cli::command().long_about(DESCRIPTION);
    let man = clap_mangen::Man::new(cmd.clone()).title("ORDERSYNC");
    let mut out = Vec::new();
    let render = |out: &mut Vec<u8>, r: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        r(out).expect("rendering into memory cannot fail");
    };
    render(&mut out, &|w| man.render_title(w));
    render(&mut out, &|w| man.render_name_section(w));
    render(&mut out, &|w| man.render_synopsis_section(w));
    render(&mut out, &|w| man.render_description_section(w));
    render(&mut out, &|w| man.render_options_section(w));

    let mut built = cmd;
    built.build();
    Roff::new()
        .control("SH", ["COMMANDS"])
        .to_writer(&mut out)
        .expect("rendering into memory cannot fail");
    for sub in visible_subcommands(&built) {
        subcommand_section(&mut out, sub);
    }
    trailer()
        .to_writer(&mut out)
        .expect("rendering into memory cannot fail");
    out
}

/// Every subcommand a user can type, depth first, without hidden ones and `help`.
pub fn visible_subcommands(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut all = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        all.push(sub);
        all.extend(visible_subcommands(sub));
    }
    all
}

/// A subcommand's synopsis, description and options, under a `.SS` heading: its own `.SH`
/// lines are dropped so they do not open new top-level sections.
fn subcommand_section(out: &mut Vec<u8>, sub: &clap::Command) {
    let name = sub
        .get_bin_name()
        .unwrap_or_else(|| sub.get_name())
        .to_string();
    // Global options and help are described once, in OPTIONS.
    let own = sub.clone().mut_args(|a| {
        if a.is_global_set() || a.get_id() == "help" {
            a.hide(true)
        } else {
            a
        }
    });
    let man = clap_mangen::Man::new(own.clone());
    let mut body = Vec::new();
    man.render_synopsis_section(&mut body)
        .expect("rendering into memory cannot fail");
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        let mut r = Roff::new();
        r.control("PP", []);
        r.text([roman(about.to_string())]);
        r.to_writer(&mut body)
            .expect("rendering into memory cannot fail");
    }
    if own.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut body)
            .expect("rendering into memory cannot fail");
    }
    Roff::new()
        .control("SS", [name.as_str()])
        .to_writer(out)
        .expect("rendering into memory cannot fail");
    let body = String::from_utf8(body).expect("roff output is UTF-8");
    for line in body.lines().filter(|l| !l.starts_with(".SH ")) {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

fn trailer() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "Success."),
        (
            "1",
            "A runtime failure or a refusal (a platform failed, an order is unknown, a transition is not allowed); the message says which.",
        ),
        (
            "2",
            "A usage error: an unknown option, command, status or platform name.",
        ),
        (
            "78",
            "The configuration is invalid; every error is listed with its file and key.",
        ),
    ] {
        r.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", [])
        .text([bold("ORDERSYNC_CONFIG")])
        .text([roman("The main configuration file, as --config gives it.")]);
    r.control("TP", [])
        .text([
            bold("ORDERSYNC_"),
            italic("SECTION"),
            bold("__"),
            italic("KEY"),
        ])
        .text([roman(
            "Overrides any configuration key; levels are separated by two underscores, for \
             example ORDERSYNC_DAEMON__LOG_LEVEL=debug or \
             ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET.",
        )]);
    r.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/ordersync/ordersync.toml",
            "The main configuration file: the [daemon] table and [defaults] for every platform.",
        ),
        (
            "/etc/ordersync/platforms.d/*.toml",
            "One file per platform, read in name order.",
        ),
        (
            "/var/lib/ordersync/ordersync.db",
            "The SQLite database (daemon.database), with a lock file per platform beside it; \
             daemon.database may name a PostgreSQL database instead.",
        ),
        (
            "/usr/share/doc/ordersync/examples/platforms.d/",
            "A commented example platform file for each kind.",
        ),
    ] {
        r.control("TP", []).text([italic(path)]).text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("systemctl"),
        roman("(1), "),
        bold("journalctl"),
        roman("(1), "),
        bold("sqlite3"),
        roman("(1), /usr/share/doc/ordersync/README.md"),
    ]);
    r
}

/// `ordersync generate WHAT` prints one file; `--out DIR` writes all of them under DIR.
pub fn run(what: Option<Asset>, out: Option<&Path>) -> Result<(), Exit> {
    match (what, out) {
        (Some(asset), None) => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&asset.render())?;
            stdout.flush()?;
            Ok(())
        }
        (None, Some(dir)) => {
            for asset in Asset::ALL {
                let path: PathBuf = dir.join(asset.path());
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
                }
                std::fs::write(&path, asset.render())
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        _ => Err(Exit::usage(
            "name one file (man, bash, zsh, fish) or give --out DIR".to_string(),
        )),
    }
}
