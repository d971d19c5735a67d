//! Identity file and trust store tests (temp dirs, real files and modes).

use super::*;
use crate::engine::Trust;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn fp(byte: u8) -> Fingerprint {
    Fingerprint::of(&[byte; 32])
}

#[test]
fn identity_is_created_private_and_reloads_to_the_same_fingerprint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("state").join("otrd");
    let first = IdentityStore::open(&dir).expect("create");
    assert_eq!(mode(&dir), 0o700);
    let key = dir.join(IDENTITY_FILE);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(fs::metadata(&key).expect("meta").len(), FILE_LEN as u64);
    let again = IdentityStore::open(&dir).expect("reload");
    assert_eq!(first.fingerprint(), again.fingerprint());
    assert_eq!(first.identity().public(), again.identity().public());
    // No stray temp files are left behind.
    let names: Vec<_> = fs::read_dir(&dir)
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn corrupt_identity_is_moved_aside_and_replaced_without_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = IdentityStore::open(tmp.path()).expect("create");
    let key = tmp.path().join(IDENTITY_FILE);
    fs::write(&key, b"not a key").expect("corrupt it");
    let second = IdentityStore::open(tmp.path()).expect("recovers");
    assert_ne!(first.fingerprint(), second.fingerprint());
    assert_eq!(mode(&key), 0o600);
    let aside = fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("identity.key.corrupt-")
        })
        .count();
    assert_eq!(aside, 1, "the old file is kept for inspection");
    // A truncated valid header is corrupt too.
    fs::remove_file(&key).expect("rm");
    fs::write(&key, &MAGIC[..]).expect("truncate");
    assert!(IdentityStore::open(tmp.path()).is_ok());
}

#[test]
fn trust_store_first_use_same_changed_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = TrustStore::open(tmp.path()).expect("open");
    assert!(!store.knows_native("bob"));
    assert_eq!(store.observe("bob", &fp(1)).expect("o"), TrustDecision::New);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(
        store.observe("bob", &fp(1)).expect("o"),
        TrustDecision::Same { verified: false }
    );
    assert_eq!(store.trust_of("bob", &fp(1)), Trust::Unverified);

    // Verifying a fingerprint that is not the current one is refused.
    assert!(matches!(
        store.verify("bob", &fp(2)),
        Err(IdentityError::Mismatch { .. })
    ));
    assert!(matches!(
        store.verify("carol", &fp(2)),
        Err(IdentityError::UnknownPeer { .. })
    ));
    store.verify("bob", &fp(1)).expect("verify");
    assert_eq!(
        store.observe("bob", &fp(1)).expect("o"),
        TrustDecision::Same { verified: true }
    );

    // A different key: Changed, remembered one kept, persisted across reopen.
    assert_eq!(
        store.observe("bob", &fp(3)).expect("o"),
        TrustDecision::Changed { previous: fp(1) }
    );
    assert_eq!(store.trust_of("bob", &fp(3)), Trust::Changed);
    let mut reopened = TrustStore::open(tmp.path()).expect("reopen");
    assert_eq!(
        reopened.observe("bob", &fp(3)).expect("o"),
        TrustDecision::Changed { previous: fp(1) }
    );
    // The old key is no longer current, so it cannot be "verified" while the change is pending.
    assert!(matches!(
        reopened.verify("bob", &fp(1)),
        Err(IdentityError::Mismatch { .. })
    ));
    // Accepting the new key explicitly replaces the remembered one.
    reopened.verify("bob", &fp(3)).expect("accept change");
    assert_eq!(
        reopened.observe("bob", &fp(3)).expect("o"),
        TrustDecision::Same { verified: true }
    );
    assert!(reopened.knows_native("bob"));

    // Only public data on disk.
    let text = fs::read_to_string(reopened.path()).expect("read");
    assert!(text.contains(&fp(3).to_hex()));
    assert!(!text.contains(&fp(1).to_hex()));
}

#[test]
fn corrupt_trust_store_is_an_error_not_a_reset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join(TRUST_FILE), b"{ nope").expect("write");
    assert!(matches!(
        TrustStore::open(tmp.path()),
        Err(IdentityError::CorruptTrust { .. })
    ));
    fs::write(
        tmp.path().join(TRUST_FILE),
        br#"{"version":1,"peers":{"bob":{"fingerprint":"XYZ","first_seen_ms":1,"verified":false}}}"#,
    )
    .expect("write");
    assert!(matches!(
        TrustStore::open(tmp.path()),
        Err(IdentityError::CorruptTrust { .. })
    ));
}

#[test]
fn writes_replace_atomically_and_leave_no_temp_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = TrustStore::open(tmp.path()).expect("open");
    for i in 0..5u8 {
        store.observe(&format!("peer{i}"), &fp(i)).expect("observe");
    }
    let names: Vec<_> = fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![TRUST_FILE.to_owned()]);
}
