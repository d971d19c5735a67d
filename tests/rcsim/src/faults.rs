//! Fault injection switches shared by every connection: refuse logins, delay or duplicate stream
//! events. (Dropping connections is a registry operation, see `state`.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Current fault settings; cheap to read on every event.
#[derive(Debug, Default)]
pub struct Faults {
    refuse_logins: AtomicBool,
    duplicate_events: AtomicBool,
    event_delay_ms: AtomicU64,
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

    /// Delays every stream event by `d` (method results are not delayed).
    pub fn set_event_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.event_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The current stream-event delay.
    pub fn event_delay(&self) -> Duration {
        Duration::from_millis(self.event_delay_ms.load(Ordering::SeqCst))
    }
}
