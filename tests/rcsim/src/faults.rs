//! Fault injection switches shared by every connection: refuse logins, delay or duplicate stream
//! events, hold room-message events to release them in reverse order, and the key-swapping man in
//! the middle (`mitm`). (Dropping connections is a registry operation, see `state`.)

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::mitm::MitmMode;
use crate::state::Out;

/// Stream frames held back, with the writers they were meant for.
type Held = Vec<(Vec<UnboundedSender<Out>>, String)>;

/// Current fault settings; cheap to read on every event.
#[derive(Debug, Default)]
pub struct Faults {
    refuse_logins: AtomicBool,
    duplicate_events: AtomicBool,
    event_delay_ms: AtomicU64,
    mitm: AtomicU8,
    mitm_rewrites: AtomicU64,
    quiet_new_dms: AtomicBool,
    /// `Some` while room-message events are being held.
    held: Mutex<Option<Held>>,
}

impl Faults {
    /// Makes every `login` fail with 403 "Login forbidden".
    pub fn set_refuse_logins(&self, on: bool) {
        self.refuse_logins.store(on, Ordering::SeqCst);
    }

    /// Whether logins are refused.
    pub fn refuse_logins(&self) -> bool {
        self.refuse_logins.load(Ordering::SeqCst)
    }

    /// Sends every stream event twice.
    pub fn set_duplicate_events(&self, on: bool) {
        self.duplicate_events.store(on, Ordering::SeqCst);
    }

    /// Whether stream events are duplicated.
    pub fn duplicate_events(&self) -> bool {
        self.duplicate_events.load(Ordering::SeqCst)
    }

    /// New DMs are not announced on `subscriptions-changed` / `rooms-changed` (a server whose
    /// notifications lag behind: members learn of the room only by listing their rooms).
    pub fn set_quiet_new_dms(&self, on: bool) {
        self.quiet_new_dms.store(on, Ordering::SeqCst);
    }

    /// Whether new DMs go unannounced.
    pub fn quiet_new_dms(&self) -> bool {
        self.quiet_new_dms.load(Ordering::SeqCst)
    }

    /// Delays every stream event by `d` (method results are not delayed).
    pub fn set_event_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.event_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The current stream-event delay.
    pub fn event_delay(&self) -> Duration {
        Duration::from_millis(self.event_delay_ms.load(Ordering::SeqCst))
    }

    /// Switches the man in the middle.
    pub fn set_mitm(&self, mode: MitmMode) {
        self.mitm.store(mode.to_u8(), Ordering::SeqCst);
    }

    /// The man in the middle's current mode.
    pub fn mitm(&self) -> MitmMode {
        MitmMode::from_u8(self.mitm.load(Ordering::SeqCst))
    }

    /// Counts one payload the man in the middle changed.
    pub fn count_mitm_rewrite(&self) {
        self.mitm_rewrites.fetch_add(1, Ordering::SeqCst);
    }

    /// How many payloads the man in the middle changed so far.
    pub fn mitm_rewrites(&self) -> u64 {
        self.mitm_rewrites.load(Ordering::SeqCst)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts holding `stream-room-messages` events (they are queued, not sent).
    pub fn hold_room_messages(&self) {
        let mut held = self.held();
        if held.is_none() {
            *held = Some(Vec::new());
        }
    }

    /// Queues a room-message frame while holding; gives it back when not holding.
    pub fn try_hold(
        &self,
        targets: Vec<UnboundedSender<Out>>,
        frame: String,
    ) -> Option<(Vec<UnboundedSender<Out>>, String)> {
        match self.held().as_mut() {
            Some(queue) => {
                queue.push((targets, frame));
                None
            }
            None => Some((targets, frame)),
        }
    }

    /// Stops holding and returns what was held, newest first (a reordering relay).
    pub fn release_reversed(&self) -> Held {
        let mut queue = self.held().take().unwrap_or_default();
        queue.reverse();
        queue
    }
}
