//! The fault queue shared by every simulator: tests push failures that the next requests consume,
//! so a scenario says exactly which request fails and how, with no randomness or timing involved.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One simulated failure, applied to one request. See [`crate::sim::apply_fault`] for how each is
/// carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Respond with this HTTP status and the platform's JSON error body; the request is not
    /// processed.
    Status(u16),
    /// 429 with a `Retry-After` header; the request is not processed.
    TooManyRequests { retry_after_secs: u64 },
    /// 200 whose body is the normal answer cut in half, so it is not JSON.
    MalformedJson,
    /// 200 with the normal page, but one record (the 2nd on the page, or the only one) has an id
    /// that is not an id.
    MalformedRecord,
    /// The normal status and headers, part of the body, then the connection is aborted (a 204,
    /// which has no body to cut, goes out as 200).
    DropConnection,
    /// Wait this long, then answer normally.
    Slow(Duration),
}

/// Faults queued for the next requests, consumed one per request in FIFO order. Cloning shares the
/// queue, so a test keeps a handle while the server consumes from another.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    queue: Arc<Mutex<VecDeque<Fault>>>,
}

impl Faults {
    pub fn push(&self, f: Fault) {
        self.lock().push_back(f);
    }

    pub fn push_n(&self, f: Fault, n: usize) {
        self.lock().extend(std::iter::repeat_n(f, n));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    pub fn next(&self) -> Option<Fault> {
        self.lock().pop_front()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Fault>> {
        // A panic elsewhere while holding this lock cannot leave the queue half-updated, so a
        // poisoned lock is still safe to use; failing every later request would hide the panic.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_and_shared_between_clones() {
        let faults = Faults::default();
        let server_side = faults.clone();
        faults.push(Fault::Status(500));
        faults.push_n(Fault::MalformedJson, 2);
        assert_eq!(server_side.pending(), 3);
        assert_eq!(server_side.next(), Some(Fault::Status(500)));
        assert_eq!(server_side.next(), Some(Fault::MalformedJson));
        faults.clear();
        assert_eq!(server_side.next(), None);
    }
}
