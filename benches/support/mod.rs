//! What the benchmarks beside `sync.rs` share: measuring a child process (the `--launcher`
//! re-execution and `wait4`, for the reason `benches/sync.rs` explains: a child's `ru_maxrss`
//! starts from its spawner's size, so measured children are spawned by a tiny copy of the bench,
//! never by the process that holds the simulated shops), the throw-away configuration files,
//! sampling a running process from `/proc`, and the `BENCH_JSON` line `bench/regenerate` reads.
//!
//! Each bench binary calls [`dispatch`] first thing in `main`, so that a re-executed copy acts
//! as the launcher (or as the bench's own measured helper) before it builds anything.

#![allow(dead_code)] // Not every bench uses every helper.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

/// `ru_maxrss` is KiB on Linux and the BSDs, bytes on macOS.
const MAXRSS_UNIT_BYTES: f64 = if cfg!(target_os = "macos") {
    1.0
} else {
    1024.0
};
pub const MIB: f64 = 1024.0 * 1024.0;

/// Whether the bench runs as a benchmark (`cargo bench` passes `--bench`) or as the smoke test
/// `cargo test --benches` makes of it.
pub fn benchmark_mode() -> bool {
    std::env::args().skip(1).any(|a| a == "--bench")
}

/// Handles the re-executed roles: `--launcher` and `--noop`. `None`: this is the orchestrator.
pub fn dispatch() -> Option<ExitCode> {
    match std::env::args().nth(1).as_deref() {
        Some("--launcher") => Some(launcher_main()),
        Some("--noop") => Some(ExitCode::SUCCESS),
        _ => None,
    }
}

/// Runs the orchestrator and turns its outcome into the exit status: non-zero when a run could
/// not be verified (never for a missed target).
pub fn finish(name: &str, outcome: anyhow::Result<bool>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name} bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The launcher.

/// One measured run, as the orchestrator asks the launcher for it (one JSON line on stdin).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env_remove: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Killed (SIGKILL) after this many seconds; the usage then says so.
    pub timeout_s: Option<f64>,
}

/// What `wait4` said about a finished child, plus the wall time from spawn to reap.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub maxrss_kib: f64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
}

impl Usage {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    pub fn rss_mib(&self) -> f64 {
        self.maxrss_kib * 1024.0 / MIB
    }

    pub fn exited_ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    pub fn describe_exit(&self) -> String {
        match (self.exit_code, self.signal, self.timed_out) {
            (_, _, true) => "killed at its time limit".to_owned(),
            (Some(c), _, _) => format!("exit status {c}"),
            (_, Some(s), _) => format!("killed by signal {s}"),
            _ => "unknown exit".to_owned(),
        }
    }

    /// Sums sequential runs: times add up, the peak is the highest.
    pub fn add(&mut self, other: &Usage) {
        self.wall_s += other.wall_s;
        self.user_s += other.user_s;
        self.sys_s += other.sys_s;
        self.maxrss_kib = self.maxrss_kib.max(other.maxrss_kib);
        if !other.exited_ok() || self.exit_code.is_none() {
            self.exit_code = other.exit_code;
            self.signal = other.signal;
        }
        self.timed_out |= other.timed_out;
    }
}

fn launcher_main() -> ExitCode {
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let reply: Result<Usage, String> = line
            .map_err(anyhow::Error::from)
            .and_then(|l| serde_json::from_str::<Job>(&l).map_err(anyhow::Error::from))
            .and_then(|job| run_measured(&job))
            .map_err(|e| format!("{e:#}"));
        let sent = serde_json::to_string(&reply)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
            .and_then(|()| out.flush());
        if sent.is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run_measured(job: &Job) -> anyhow::Result<Usage> {
    let mut cmd = Command::new(&job.program);
    cmd.args(&job.args)
        .stdin(Stdio::null())
        .stdout(File::create(&job.stdout).context("child's stdout file")?)
        .stderr(File::create(&job.stderr).context("child's stderr file")?);
    for name in &job.env_remove {
        cmd.env_remove(name);
    }
    cmd.envs(job.env.iter().cloned());
    if job.timeout_s.is_some() {
        // Its own process group, so the time limit ends whatever the child started too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let began = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", job.program.display()))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // WNOHANG while a time limit runs, so the launcher can kill the child at it.
        let flags = if job.timeout_s.is_some() && !timed_out {
            libc::WNOHANG
        } else {
            0
        };
        // SAFETY: both pointers are to live locals; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r == pid {
            break;
        }
        if r == 0 {
            if job
                .timeout_s
                .is_some_and(|t| began.elapsed().as_secs_f64() >= t)
            {
                // SAFETY: pid is our own child, not yet reaped, so neither it nor its group
                // id can have been reused.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                timed_out = true;
            } else {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    let wall = began.elapsed();
    // Already reaped by wait4; dropping a std Child neither waits nor kills.
    drop(child);
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    Ok(Usage {
        wall_s: wall.as_secs_f64(),
        user_s: secs(ru.ru_utime),
        sys_s: secs(ru.ru_stime),
        maxrss_kib: ru.ru_maxrss as f64 * MAXRSS_UNIT_BYTES / 1024.0,
        exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        timed_out,
    })
}

/// The orchestrator's end of the launcher. Start it before building any simulated shop.
pub struct Launcher {
    child: Child,
    to: Option<ChildStdin>,
    from: BufReader<ChildStdout>,
    /// `ORDERSYNC_*` variables would override (or, unknown, fail) the daemon's configuration.
    env_remove: Vec<String>,
}

impl Launcher {
    pub fn start() -> anyhow::Result<Launcher> {
        let exe = std::env::current_exe().context("cannot find the bench executable")?;
        let mut child = Command::new(exe)
            .arg("--launcher")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the launcher")?;
        let to = child.stdin.take();
        let from = BufReader::new(child.stdout.take().context("launcher stdout")?);
        Ok(Launcher {
            child,
            to,
            from,
            env_remove: daemon_env_remove(),
        })
    }

    /// A job whose output goes to `dir/name.stdout` and `dir/name.stderr`.
    pub fn job(&self, program: &Path, args: Vec<String>, dir: &Path, name: &str) -> Job {
        Job {
            program: program.to_path_buf(),
            args,
            env_remove: self.env_remove.clone(),
            env: Vec::new(),
            stdout: dir.join(format!("{name}.stdout")),
            stderr: dir.join(format!("{name}.stderr")),
            timeout_s: None,
        }
    }

    pub fn run(&mut self, job: &Job) -> anyhow::Result<Usage> {
        let to = self.to.as_mut().context("launcher already closed")?;
        writeln!(to, "{}", serde_json::to_string(job)?)?;
        to.flush()?;
        let mut line = String::new();
        if self.from.read_line(&mut line)? == 0 {
            bail!("the launcher exited");
        }
        serde_json::from_str::<Result<Usage, String>>(&line)?.map_err(|e| anyhow!(e))
    }

    /// Peak RSS of a child that does nothing, spawned the same way: the floor of every figure.
    pub fn rss_floor(&mut self, dir: &Path) -> anyhow::Result<Usage> {
        let exe = std::env::current_exe()?;
        let job = self.job(&exe, vec!["--noop".into()], dir, "noop");
        let usage = self.run(&job)?;
        anyhow::ensure!(
            usage.exited_ok(),
            "the do-nothing child failed: {}",
            usage.describe_exit()
        );
        Ok(usage)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // Closing its stdin ends the launcher's loop.
        self.to.take();
        let _ = self.child.wait();
    }
}

/// Environment variables a daemon child must not inherit from whoever runs the bench.
pub fn daemon_env_remove() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.to_ascii_uppercase().starts_with("ORDERSYNC_") || k == "JOURNAL_STREAM")
        .collect()
}

/// The daemon the benchmarks run: this build's release `ordersync`, or `ORDERSYNC_BENCH_DAEMON` (for example a
/// build with `--features heap-profile`, to profile the scale run's heap).
pub fn daemon_bin() -> PathBuf {
    std::env::var_os("ORDERSYNC_BENCH_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ordersync")))
}

// ---------------------------------------------------------------------------------------------
// Configuration files.

/// Writes `dir/ordersync.toml` (database `dir/ordersync.db`, `extra` lines in `[daemon]`) and
/// each `(file name, TOML)` into `dir/platforms.d/`; returns the main file.
pub fn write_config(
    dir: &Path,
    daemon_extra: &str,
    platforms: &[(String, String)],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("platforms.d"))?;
    let main_file = dir.join("ordersync.toml");
    std::fs::write(
        &main_file,
        format!(
            "[daemon]\ndatabase = {}\nlog_level = \"info\"\n{daemon_extra}",
            toml_string(&dir.join("ordersync.db").to_string_lossy())
        ),
    )?;
    for (file, toml) in platforms {
        std::fs::write(dir.join("platforms.d").join(file), toml)?;
    }
    Ok(main_file)
}

/// `--config MAIN` followed by `args`.
pub fn daemon_args(main_file: &Path, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--config".to_owned(),
        main_file.to_string_lossy().into_owned(),
    ];
    v.extend(args.iter().map(|a| (*a).to_owned()));
    v
}

/// A TOML basic string (JSON's escaping is valid TOML for everything a path or URL holds).
pub fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The work folder: under `ORDERSYNC_BENCH_DIR` if set, else the system temp folder.
pub fn work_dir(bench: &str) -> anyhow::Result<tempfile::TempDir> {
    let prefix = format!("ordersync-bench-{bench}-");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    Ok(match std::env::var_os("ORDERSYNC_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            b.tempdir_in(d)?
        }
        None => b.tempdir()?,
    })
}

// ---------------------------------------------------------------------------------------------
// The machine and this process.

pub fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

pub fn env_f64(name: &str, default: f64) -> anyhow::Result<f64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// User + system CPU seconds of this process so far.
pub fn self_cpu_s() -> f64 {
    // SAFETY: rusage is plain old data and getrusage only writes to it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a pointer to a live local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// A live process's resident set (MiB) and CPU seconds so far (user + system), from `/proc`.
pub fn proc_sample(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((rss_kib / 1024.0, ticks / hz.max(1.0)))
}

/// A process and its live children (a PostgreSQL server: the postmaster and its backends):
/// CPU seconds so far, counting children that have exited (a backend's CPU moves to its
/// parent's `cutime`/`cstime` when it is reaped), and the proportional set size in MiB (shared
/// memory counted once across them, not once per backend as RSS would).
pub fn process_tree_sample(pid: u32) -> Option<(f64, f64)> {
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64).max(1.0);
    // (parent, utime + stime, cutime + cstime) in ticks.
    let stat = |p: u32| -> Option<(u32, f64, f64)> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        Some((
            f.get(1)?.parse().ok()?,
            num(11)? + num(12)?,
            num(13)? + num(14)?,
        ))
    };
    let pss_mib = |p: u32| -> f64 {
        std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Pss:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0)
    };
    let (_, own, reaped) = stat(pid)?;
    let (mut ticks, mut pss) = (own + reaped, pss_mib(pid));
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((parent, cpu, _)) = stat(child)
            && parent == pid
        {
            ticks += cpu;
            pss += pss_mib(child);
        }
    }
    Some((ticks / hz, pss))
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |c| c.get())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Hardware"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The filesystem type a folder lives on (tmpfs and ext4 sync very differently).
pub fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            mounts
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (_, point, fstype) = (f.next()?, f.next()?, f.next()?);
                    Some((
                        PathBuf::from(point.replace("\\040", " ")),
                        fstype.to_owned(),
                    ))
                })
                .filter(|(point, _)| dir.starts_with(point))
                .max_by_key(|(point, _)| point.components().count())
                .map(|(_, fstype)| fstype)
        })
        .unwrap_or_else(|| "unknown filesystem".to_owned())
}

/// The machine fields every `BENCH_JSON` line carries.
pub fn machine_json(work: &Path, load_start: &str) -> serde_json::Value {
    serde_json::json!({
        "cores": cores(),
        "cpu_model": cpu_model(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "db_filesystem": filesystem_of(work),
    })
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Counts rows with one SQL `count(*)` query.
pub fn count(conn: &rusqlite::Connection, sql: &str) -> anyhow::Result<i64> {
    conn.query_row(sql, [], |r| r.get(0))
        .with_context(|| format!("query failed: {sql}"))
}

/// Prints the report line `bench/regenerate` collects.
pub fn print_bench_json(report: &serde_json::Value) {
    println!("BENCH_JSON {report}");
}

// ---------------------------------------------------------------------------------------------
// Platform files for the built-in simulators.

/// A platform file for a simulated shop of `kind` at `url`, with the simulator's default
/// credentials; `extra` lines go into the `[platforms.<name>]` table.
pub fn platform_toml(
    name: &str,
    kind: &str,
    url: &str,
    backfill_from: chrono::DateTime<chrono::Utc>,
    extra: &str,
) -> String {
    use ordersync_sim::{akinon, epixel, merchantpro, mitrabunso, sirclo};
    let (more, auth) = match kind {
        "merchantpro" => {
            let o = merchantpro::SimOptions::default();
            (
                String::new(),
                format!(
                    "api_key = {}\napi_secret = {}\n",
                    toml_string(&o.api_key),
                    toml_string(&o.api_secret)
                ),
            )
        }
        "sirclo" => {
            let o = sirclo::SimOptions::default();
            (
                String::new(),
                format!(
                    "partner_id = {}\nsecret = {}\napi_key = {}\napi_secret = {}\n",
                    toml_string(&o.partner_id),
                    toml_string(&o.secret),
                    toml_string(&o.api_key),
                    toml_string(&o.api_secret)
                ),
            )
        }
        "akinon" => {
            let o = akinon::SimOptions::default();
            (
                String::new(),
                format!("token = {}\n", toml_string(&o.token)),
            )
        }
        "mitrabunso" => {
            let o = mitrabunso::SimOptions::default();
            (
                String::new(),
                format!(
                    "user_id = {}\ntoken = {}\n",
                    toml_string(&o.user_id),
                    toml_string(&o.token)
                ),
            )
        }
        "epixel" => {
            let o = epixel::SimOptions::default();
            (
                format!("api_prefix = {}\n", toml_string(&o.api_prefix)),
                format!(
                    "api_key = {}\ntoken = {}\n",
                    toml_string(&o.api_key),
                    toml_string(&o.token)
                ),
            )
        }
        other => panic!("no simulator of kind {other}"),
    };
    format!(
        "[platforms.{name}]\nkind = \"{kind}\"\nbase_url = {url}\nbackfill_from = \"{from}\"\n\
         {more}{extra}\n[platforms.{name}.auth]\n{auth}",
        url = toml_string(url),
        from = backfill_from.to_rfc3339(),
    )
}

/// Of the simulator's requests since `before` (its request count then), how many and the first
/// one not answered 2xx, if any. The log keeps the newest 10,000.
pub fn requests_since(
    log: &[ordersync_sim::RecordedRequest],
    total_now: usize,
    before: usize,
) -> (usize, Option<String>) {
    let n = total_now - before;
    let ours = &log[log.len().saturating_sub(n)..];
    let bad = ours
        .iter()
        .find(|r| !(200..300).contains(&r.status))
        .map(|r| format!("{} {} answered {}", r.method, r.path_and_query, r.status));
    (n, bad)
}
