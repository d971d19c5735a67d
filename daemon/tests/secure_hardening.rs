//! `harden_process` in a process of its own (it changes process-wide state): afterwards the
//! process is not dumpable and core files are limited to 0 bytes, soft and hard.

use otrd::secure::harden_process;
use rustix::process::{dumpable_behavior, getrlimit, DumpableBehavior, Resource};

#[test]
fn hardening_disables_dumps_and_core_files() {
    let report = harden_process();
    assert!(report.is_complete(), "failures: {:?}", report.failures);
    assert_eq!(
        dumpable_behavior().ok(),
        Some(DumpableBehavior::NotDumpable)
    );
    let core = getrlimit(Resource::Core);
    assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line");
    assert_eq!(line.split_whitespace().nth(4), Some("0"), "{line}");
}
