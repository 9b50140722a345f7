//! Keeping the daemon's resident memory close to what its heap holds, with glibc's allocator.
//!
//! glibc gives every thread that allocates under contention an arena of its own (up to eight per
//! core) and returns a freed block to the system only from the top of an arena. A daemon whose
//! runs come in bursts (every platform due at the same tick) leaves each burst's pages and
//! buffers as free holes spread over many arenas: a heap profile of 300 platforms measured
//! about 143 MiB live at the peak against an RSS of 230 MiB. Two arenas, and handing free pages
//! back after the burst, keep RSS near the live heap. Elsewhere than glibc both are no-ops.

/// Caps glibc's arenas. Must run before the runtime starts its threads: an arena, once made,
/// stays for the life of the process.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the free pages inside every arena to the system. Takes a few milliseconds with a
/// heap of hundreds of MiB; the timetable calls it on the blocking pool, between bursts.
pub fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe; it only advises the kernel about free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
