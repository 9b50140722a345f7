//! The `ordersync` binary: the command line in [`ordersync::cli`], and with the `heap-profile`
//! feature, DHAT's heap profiler around it.

#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "heap-profile")]
    let _profiler = heap_profile();
    ordersync::cli::main()
}

/// DHAT's profile is written to `dhat-heap.json` when the profiler is dropped: at exit, after
/// the daemon has shut down cleanly, or with `HEAP_PROFILE_AFTER_SECS=<seconds>` that many
/// seconds after start, so its "at end" figures are the live heap of a running daemon (two
/// profiles taken at different times show what grows).
#[cfg(feature = "heap-profile")]
fn heap_profile() -> Option<dhat::Profiler> {
    let profiler = dhat::Profiler::new_heap();
    match std::env::var("HEAP_PROFILE_AFTER_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(secs) => {
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(secs));
                drop(profiler);
            });
            None
        }
        None => Some(profiler),
    }
}
