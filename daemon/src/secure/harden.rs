//! Process hardening at start-up: no core dumps and no ptrace by other processes of the same user.
//!
//! `PR_SET_DUMPABLE 0` stops the kernel from writing a core file and stops same-uid processes from
//! attaching a debugger or reading `/proc/<pid>/mem`; `RLIMIT_CORE 0` (soft and hard) keeps a core
//! from being written even if something later makes the process dumpable again.

use rustix::process::{self, DumpableBehavior, Resource, Rlimit};

/// What [`harden_process`] managed to do. Failures are reported, not fatal: the daemon still runs,
/// and `GetStatus` can say what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HardeningReport {
    /// `PR_SET_DUMPABLE` is now 0.
    pub not_dumpable: bool,
    /// `RLIMIT_CORE` is now 0 soft and hard.
    pub core_limit_zero: bool,
    /// One line per step that failed, with the OS error.
    pub failures: Vec<String>,
}

impl HardeningReport {
    /// True when every step succeeded.
    pub fn is_complete(&self) -> bool {
        self.not_dumpable && self.core_limit_zero
    }
}

/// Makes the process non-dumpable and disables core files; logs what worked.
pub fn harden_process() -> HardeningReport {
    let mut report = HardeningReport::default();
    match process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        Ok(()) => report.not_dumpable = true,
        Err(e) => report
            .failures
            .push(format!("prctl(PR_SET_DUMPABLE, 0) failed: {e}")),
    }
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    match process::setrlimit(Resource::Core, zero) {
        Ok(()) => report.core_limit_zero = true,
        Err(e) => report
            .failures
            .push(format!("setrlimit(RLIMIT_CORE, 0) failed: {e}")),
    }
    if report.is_complete() {
        tracing::info!(
            not_dumpable = report.not_dumpable,
            core_limit_zero = report.core_limit_zero,
            "process hardened"
        );
    } else {
        tracing::warn!(
            not_dumpable = report.not_dumpable,
            core_limit_zero = report.core_limit_zero,
            failures = ?report.failures,
            "process hardening incomplete"
        );
    }
    report
}
