//! GetStatus without a trip through the engine task (issue 2's unary budget).
//!
//! The engine publishes what GetStatus reports in a `watch` cell that every [`EngineHandle`]
//! reads directly. Locked memory is the one field not in the cell: it is global state of the
//! arena ([`crate::secure::arena_status`]), read at request time, so it is always current.
//!
//! The cell must never be stale when a client could know better, so the engine publishes:
//! - before every event reaches a watcher ([`Engine::emit`]),
//! - before every RPC answer ([`Engine::reply`]),
//! - at the end of every pass of its loop (state that changed without an event or answer).
//!
//! A client that saw an event or an answer therefore sees at least that state in GetStatus.
//! Publishing is cheap enough to do that often: a dirty flag says whether anything GetStatus
//! reports changed, and session counts are kept as a running tally (a state change is seen where
//! every input reaches a session, [`Engine::feed`]) instead of a pass over 10,000 sessions.
//!
//! [`EngineHandle`]: super::EngineHandle

use super::core::{now_ms, Engine};
use super::types::*;
use crate::config::MemlockPolicy;
use crate::otr::session::{Input, Output, SessionError};
use tokio::sync::oneshot;

/// Sessions in each counted state, kept up to date as inputs move them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionTally {
    /// Sessions in any state but `not_started`.
    pub(super) live: u32,
    /// Established sessions.
    pub(super) established: u32,
    /// Established legacy sessions between two otrd daemons (the server could read them).
    pub(super) exposed: u32,
}

impl SessionTally {
    /// Moves one session from `before` to `after`; true when a count changed.
    pub(super) fn moved(&mut self, before: SessionState, after: SessionState) -> bool {
        if before == after {
            return false;
        }
        let live = |s| s != SessionState::NotStarted;
        let est = |s| s == SessionState::Established;
        let old = *self;
        if live(before) {
            self.live = self.live.saturating_sub(1);
        }
        if live(after) {
            self.live += 1;
        }
        if est(before) {
            self.established = self.established.saturating_sub(1);
        }
        if est(after) {
            self.established += 1;
        }
        old != *self
    }
}

/// The arena's state, with what `policy` makes of a failure to lock.
pub(super) fn memory_status(policy: MemlockPolicy) -> MemoryStatus {
    let mut m = crate::secure::arena_status();
    if !m.locked {
        let policy = match policy {
            MemlockPolicy::Refuse => "new sessions are refused ([security] memlock = \"refuse\")",
            MemlockPolicy::Warn => {
                "sessions go on without locked memory ([security] memlock = \"warn\")"
            }
        };
        m.detail = format!("{}; {policy}", m.detail);
    }
    m
}

/// The realtime relays' budgets when `status` says the server is one that needs them (read at
/// request time: they change with every call, outside the engine task).
pub(super) fn relay_budgets(
    status: &StatusInfo,
    relays: &crate::transport::realtime::Relays,
) -> Vec<RelayBudget> {
    if status
        .native_transports
        .contains(&TransportKind::UserActivity)
    {
        relays.budgets()
    } else {
        Vec::new()
    }
}

impl Engine {
    /// What GetStatus reports now (memory included).
    pub(super) fn status(&self) -> StatusInfo {
        let mut status = StatusInfo {
            memory: memory_status(self.cfg.config.security.memlock),
            ..self.status_snapshot()
        };
        status.relays = relay_budgets(&status, &self.relays);
        status
    }

    /// Everything GetStatus reports but memory (see the module docs).
    pub(super) fn status_snapshot(&self) -> StatusInfo {
        let caps = self.me.as_ref().map(|m| &m.server);
        let (otr_available, reason) = match caps {
            Some(c) => (c.otr_relay, c.reason.clone().unwrap_or_default()),
            None => (
                false,
                format!("not connected to the server ({})", self.connection.1),
            ),
        };
        StatusInfo {
            server_url: self.cfg.config.server.url.clone(),
            account: self.cfg.config.account.username.clone(),
            account_user_id: self
                .me
                .as_ref()
                .map(|m| m.user_id.clone())
                .unwrap_or_default(),
            connection: self.connection.0,
            connection_detail: self.connection.1.clone(),
            server_version: caps.map(|c| c.version.clone()).unwrap_or_default(),
            otr_available,
            otr_unavailable_reason: if otr_available { String::new() } else { reason },
            native_transports: self.native_transports(),
            memory: MemoryStatus::default(),
            session_count: self.tally.live,
            established_count: self.tally.established,
            exposed_count: self.tally.exposed,
            instance_tag: self.instance_tag(),
            native_unavailable_reason: self.native_unavailable(),
            login_method: self
                .me
                .as_ref()
                .map(|m| m.login.describe())
                .unwrap_or_default(),
            server_generation: caps
                .map(|c| c.generation.name().to_owned())
                .unwrap_or_default(),
            api_paths: if self.me.is_some() {
                self.api_paths.describe().to_owned()
            } else {
                String::new()
            },
            two_factor: self
                .pending_two_factor
                .or_else(|| self.me.as_ref().and_then(|m| m.login.two_factor))
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            lock: self.lock.clone(),
            lock_watermark: self.lock_watermark,
            relays: Vec::new(),
        }
    }

    /// Publishes the snapshot if anything in it changed since the last time.
    pub(super) fn publish_status(&mut self) {
        // The client switches to REST-only paths by itself when a DDP method is missing.
        let gen9 = self
            .me
            .as_ref()
            .is_some_and(|m| m.server.generation == crate::rocketchat::Generation::RestOnly);
        let paths = crate::rocketchat::ApiPaths {
            rest_only: gen9 || self.client.as_ref().is_some_and(|c| c.method_missing()),
        };
        if paths != self.api_paths {
            self.api_paths = paths;
            self.status_dirty = true;
        }
        if self.status_dirty {
            self.status_dirty = false;
            let snapshot = self.status_snapshot();
            self.status_tx.send_if_modified(|current| {
                let changed = *current != snapshot;
                *current = snapshot;
                changed
            });
        }
        #[cfg(debug_assertions)]
        self.check_status_published();
    }

    /// Debug builds (every test) check that no change escaped the dirty flag or the tally.
    #[cfg(debug_assertions)]
    fn check_status_published(&self) {
        let live = self
            .sessions
            .values()
            .filter(|s| s.state() != SessionState::NotStarted)
            .count() as u32;
        let established = self
            .sessions
            .values()
            .filter(|s| s.state() == SessionState::Established)
            .count() as u32;
        let exposed = self.sessions.values().filter(|s| s.exposed()).count() as u32;
        assert_eq!(
            (self.tally.live, self.tally.established, self.tally.exposed),
            (live, established, exposed),
            "session tally out of step"
        );
        assert!(
            *self.status_tx.borrow() == self.status_snapshot(),
            "published status is stale"
        );
    }

    /// Sets the connection state (GetStatus reports it).
    pub(super) fn set_connection(&mut self, state: ConnectionState, detail: String) {
        self.connection = (state, detail);
        self.status_dirty = true;
    }

    /// Records who we are logged in as and what the server can do (GetStatus reports it).
    pub(super) fn set_me(&mut self, info: crate::rocketchat::SessionInfo) {
        self.me = Some(info);
        self.status_dirty = true;
    }

    /// Feeds an input to a room's session, keeping the tally in step; `None` without a session.
    /// Every input a session gets goes through here.
    pub(super) fn feed(
        &mut self,
        room_id: &str,
        input: Input,
    ) -> Option<Result<Vec<Output>, SessionError>> {
        let session = self.sessions.get_mut(room_id)?;
        let (before, was_exposed) = (session.state(), session.exposed());
        let result = session.handle(input, now_ms(), &mut self.rng);
        let (after, exposed) = (session.state(), session.exposed());
        if self.tally.moved(before, after) {
            self.status_dirty = true;
        }
        if was_exposed != exposed {
            self.tally.exposed = if exposed {
                self.tally.exposed + 1
            } else {
                self.tally.exposed.saturating_sub(1)
            };
            self.status_dirty = true;
        }
        Some(result)
    }

    /// Answers an RPC, after publishing the status, so that a client that got its answer never
    /// reads an older GetStatus. A dropped receiver means the client went away: nothing to do.
    pub(super) fn reply<T>(&mut self, to: oneshot::Sender<T>, answer: T) {
        self.publish_status();
        let _ = to.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    #[test]
    fn the_tally_follows_each_move() {
        let mut t = SessionTally::default();
        assert!(t.moved(NotStarted, Establishing));
        assert!(t.moved(NotStarted, Requested));
        assert_eq!((t.live, t.established), (2, 0));
        assert!(t.moved(Establishing, Established));
        assert_eq!((t.live, t.established), (2, 1));
        assert!(!t.moved(Established, Established));
        // Ended still counts as a session (it is not `not_started`), only no longer established.
        assert!(t.moved(Established, Ended));
        assert_eq!((t.live, t.established), (2, 0));
        assert!(!t.moved(Ended, Error), "both live, neither established");
        assert!(t.moved(Requested, NotStarted));
        assert_eq!((t.live, t.established), (1, 0));
    }
}
