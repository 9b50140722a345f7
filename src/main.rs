//! The `ordersync` binary: the command line in [`ordersync::cli`], and with the `heap-profile`
//! feature, DHAT's heap profiler around it.

#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> std::process::ExitCode {
    // Written to `dhat-heap.json` when dropped, after the daemon has shut down cleanly.
    #[cfg(feature = "heap-profile")]
    let _profiler = dhat::Profiler::new_heap();
    ordersync::cli::main()
}
