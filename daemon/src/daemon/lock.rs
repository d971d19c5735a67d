//! Wires the logind watcher to the engine: every lock, `LockedHint` or suspend ends every session
//! and locks the engine; logind's `Unlock` or `LockedHint = false` unlocks it.

use crate::engine::EngineHandle;
use crate::lockscreen::{self, LockReason, WatchHandle};
use tokio::sync::mpsc;

/// The running watch; dropping it stops watching and releases the engine handle, so shutdown
/// is not held up by it.
pub struct LockWatch {
    _watch: WatchHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LockWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching logind (unless the config turned it off). Without logind — containers, no
/// system bus — the daemon runs on and says so: `otrctl lock` still works.
pub async fn start(enabled: bool, engine: EngineHandle) -> Option<LockWatch> {
    if !enabled {
        tracing::info!("lock-screen teardown off ([security] lock_on_screen_lock = false)");
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<LockReason>(8);
    let handle = match lockscreen::watch(None, tx).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch logind; wire your screen locker to `otrctl lock`");
            return None;
        }
    };
    let task = tokio::spawn(async move {
        while let Some(reason) = rx.recv().await {
            if reason.is_unlock() {
                match engine.unlock().await {
                    Ok(was_locked) => tracing::info!(?reason, was_locked, "screen unlocked"),
                    Err(e) => tracing::error!(?reason, error = %e, "screen unlock: engine gone"),
                }
                continue;
            }
            match engine.lock(reason.as_str()).await {
                Ok(ended) => tracing::info!(?reason, ended, "screen lock: every session ended"),
                Err(e) => {
                    tracing::error!(?reason, error = %e, "screen lock: could not end the sessions")
                }
            }
        }
    });
    Some(LockWatch {
        _watch: handle,
        task,
    })
}
