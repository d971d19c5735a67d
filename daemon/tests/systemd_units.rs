//! The user units in `systemd/`: the directives the security model depends on are present, the
//! memlock limit covers 10,000 sessions, and `systemd-analyze verify` accepts both files (skipped,
//! with a message, where `systemd-analyze` is not installed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

fn read_unit(name: &str) -> String {
    std::fs::read_to_string(units_dir().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The value of `key=` (last one wins, as in systemd), ignoring comments.
fn directive<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

#[test]
fn socket_unit_is_private_to_the_user() {
    let socket = read_unit("otrd.socket");
    for (key, value) in [
        ("ListenStream", "%t/otrd/otrd.sock"),
        ("SocketMode", "0600"),
        ("DirectoryMode", "0700"),
    ] {
        assert_eq!(directive(&socket, key), Some(value), "{key}");
    }
}

#[test]
fn service_unit_has_the_hardening_the_security_model_needs() {
    let service = read_unit("otrd.service");
    for (key, value) in [
        ("Type", "notify"),
        ("ExecStart", "%h/.cargo/bin/otrd"),
        ("Restart", "on-failure"),
        ("LimitCORE", "0"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("ReadWritePaths", "%h/.local/share/otrd %t/otrd"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallArchitectures", "native"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
    ] {
        assert_eq!(directive(&service, key), Some(value), "{key}");
    }
    let filters: Vec<&str> = service
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SystemCallFilter="))
        .collect();
    assert!(filters.contains(&"@system-service"), "{filters:?}");
}

#[test]
fn memlock_limit_covers_ten_thousand_sessions() {
    let service = read_unit("otrd.service");
    let limit = directive(&service, "LimitMEMLOCK").expect("LimitMEMLOCK set");
    let mib: u64 = limit
        .strip_suffix('M')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("LimitMEMLOCK={limit} is not in M"));
    // At most 512 locked bytes of keys and state per session, in 64 KiB chunks.
    let needed = 10_000 * 512 + 64 * 1024;
    assert!(mib * 1024 * 1024 >= needed, "{mib} MiB < {needed} bytes");
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipping: systemd-analyze not installed (Debian package `systemd`)");
        return;
    }
    // A copy whose ExecStart names a binary that exists here, so verify also checks it runs.
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tempfile::tempdir().expect("runtime dir");
    std::fs::write(dir.path().join("otrd.socket"), read_unit("otrd.socket")).expect("copy");
    let service = read_unit("otrd.service").replace(
        "ExecStart=%h/.cargo/bin/otrd",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_otrd")),
    );
    std::fs::write(dir.path().join("otrd.service"), service).expect("copy");

    let out = Command::new("systemd-analyze")
        .args([
            "--user",
            "--man=no",
            "verify",
            "otrd.socket",
            "otrd.service",
        ])
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Failed to initialize manager") {
        println!("skipping: systemd-analyze cannot start a user manager here: {stderr}");
        return;
    }
    assert!(out.status.success(), "verify failed: {stderr}");
    // Unknown or malformed directives are only warnings to verify; they are errors to us.
    for bad in ["Unknown", "ignoring", "Invalid", "Failed", "not executable"] {
        assert!(!stderr.contains(bad), "verify warned ({bad}): {stderr}");
    }
}
