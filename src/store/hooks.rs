//! Test hooks of the store, only in builds with the `crash-hooks` feature (the test suite's,
//! never the shipped binary's): holding a PostgreSQL page's transaction open just before its
//! commit, so a test can interleave two writers and a reader at will.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::sync::watch;

struct Held {
    /// Set by the page when it reaches the hook.
    reached: watch::Sender<bool>,
    /// Set by the test to let the page commit.
    release: watch::Receiver<bool>,
}

fn held() -> &'static Mutex<HashMap<String, Held>> {
    static HELD: OnceLock<Mutex<HashMap<String, Held>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// The next page of `platform` written to PostgreSQL waits before its commit until
/// [`Gate::release`]; [`Gate::reached`] waits until it is there.
pub struct Gate {
    reached: watch::Receiver<bool>,
    release: watch::Sender<bool>,
}

pub fn hold_next_page_commit(platform: &str) -> Gate {
    let (reached_tx, reached_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    held().lock().unwrap().insert(
        platform.to_string(),
        Held {
            reached: reached_tx,
            release: release_rx,
        },
    );
    Gate {
        reached: reached_rx,
        release: release_tx,
    }
}

impl Gate {
    pub async fn reached(&mut self) {
        let _ = self.reached.wait_for(|r| *r).await;
    }

    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

pub(crate) async fn before_page_commit(platform: &str) {
    let held = held().lock().unwrap().remove(platform);
    if let Some(mut h) = held {
        let _ = h.reached.send(true);
        let _ = h.release.wait_for(|r| *r).await;
    }
}
