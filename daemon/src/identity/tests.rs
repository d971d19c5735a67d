//! Identity file and trust store tests (temp dirs, real files and modes).

use super::*;
use crate::engine::Trust;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

/// A temporary directory with the mode a state directory must have (0700).
fn private_tempdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).expect("chmod 700");
    tmp
}

fn fp(byte: u8) -> Fingerprint {
    Fingerprint::of(&[byte; 32])
}

#[test]
fn identity_is_created_private_and_reloads_to_the_same_fingerprint() {
    let tmp = private_tempdir();
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
fn a_state_directory_that_is_a_symlink_or_open_to_others_is_refused() {
    let tmp = private_tempdir();
    let real = tmp.path().join("real");
    fs::create_dir(&real).expect("mkdir");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let err = IdentityStore::open(&link).expect_err("symlink");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(TrustStore::open(&link).is_err());

    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = IdentityStore::open(&real).expect_err("0755");
    assert!(err.to_string().contains("755"), "{err}");
    // Nothing was created in a directory we refused.
    assert_eq!(fs::read_dir(&real).expect("ls").count(), 0);
}

#[test]
fn an_identity_key_symlink_or_readable_by_others_is_refused_not_replaced() {
    let tmp = private_tempdir();
    let first = IdentityStore::open(tmp.path()).expect("create");
    let key = tmp.path().join(IDENTITY_FILE);

    // Readable by others: refused (the key may have leaked), never silently replaced.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = IdentityStore::open(tmp.path()).expect_err("0644");
    assert!(matches!(err, IdentityError::UnsafeKey { .. }), "{err}");
    assert!(err.to_string().contains("644"), "{err}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        IdentityStore::open(tmp.path())
            .expect("fixed")
            .fingerprint(),
        first.fingerprint()
    );

    // A symlink (to a key someone else planted, say): refused, not followed.
    let planted = tmp.path().join("planted");
    fs::rename(&key, &planted).expect("mv");
    std::os::unix::fs::symlink(&planted, &key).expect("symlink");
    let err = IdentityStore::open(tmp.path()).expect_err("symlink");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(fs::symlink_metadata(&key)
        .expect("meta")
        .file_type()
        .is_symlink());
}

#[test]
fn an_io_error_reading_the_key_never_makes_a_new_identity() {
    let tmp = private_tempdir();
    let key = tmp.path().join(IDENTITY_FILE);
    // A directory where the key should be: opening works, reading fails with EISDIR.
    fs::create_dir(&key).expect("mkdir");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o700)).expect("chmod");
    let err = IdentityStore::open(tmp.path()).expect_err("not a file");
    assert!(
        matches!(
            err,
            IdentityError::UnsafeKey { .. } | IdentityError::File { .. }
        ),
        "{err}"
    );
    assert!(key.is_dir(), "left as it was");
    let aside = fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .count();
    assert_eq!(aside, 0, "nothing moved aside, nothing created");
}

#[test]
fn corrupt_identity_is_moved_aside_and_replaced_without_panic() {
    let tmp = private_tempdir();
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
    files::write_new_atomic(&key, &MAGIC[..]).expect("truncate");
    assert!(IdentityStore::open(tmp.path()).is_ok());
}

const SERVER: &str = "https://chat.example.com";

fn bob() -> PeerId<'static> {
    PeerId {
        server: SERVER,
        account_uid: "alice-uid",
        uid: "bob-uid",
        username: "bob",
    }
}

fn decision(store: &mut TrustStore, peer: &PeerId<'_>, f: &Fingerprint) -> TrustDecision {
    store.observe(peer, f).expect("observe").decision
}

#[test]
fn first_use_is_accepted_unverified_and_a_new_key_is_held_until_a_decision() {
    let tmp = private_tempdir();
    let mut store = TrustStore::open(tmp.path()).expect("open");
    assert!(!store.knows_native(&bob()));
    assert_eq!(store.trust_of(&bob(), &fp(1)), Trust::Unknown);
    assert_eq!(decision(&mut store, &bob(), &fp(1)), TrustDecision::New);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(store.trust_of(&bob(), &fp(1)), Trust::Unverified);
    assert_eq!(
        decision(&mut store, &bob(), &fp(1)),
        TrustDecision::Same { verified: false }
    );

    // A key never seen for bob: held, the known one named.
    assert_eq!(
        decision(&mut store, &bob(), &fp(2)),
        TrustDecision::NewDevice {
            previous: Some(fp(1))
        }
    );
    assert_eq!(store.trust_of(&bob(), &fp(2)), Trust::Changed);
    // Seen again before a decision: still held, and persisted across a reopen.
    let mut store = TrustStore::open(tmp.path()).expect("reopen");
    assert_eq!(
        decision(&mut store, &bob(), &fp(2)),
        TrustDecision::Pending {
            previous: Some(fp(1))
        }
    );

    // Accepting is not verifying.
    store.accept(&bob(), &fp(2)).expect("accept");
    assert_eq!(store.trust_of(&bob(), &fp(2)), Trust::Unverified);
    assert_eq!(
        decision(&mut store, &bob(), &fp(2)),
        TrustDecision::Same { verified: false }
    );
    // Verifying a key never seen in session is refused; the seen one verifies.
    assert!(matches!(
        store.verify(&bob(), &fp(9)),
        Err(IdentityError::Mismatch { .. })
    ));
    store.verify(&bob(), &fp(2)).expect("verify");
    assert_eq!(store.trust_of(&bob(), &fp(2)), Trust::Verified);
    // Accepting a verified key again does not downgrade it.
    store.accept(&bob(), &fp(2)).expect("accept again");
    assert_eq!(store.trust_of(&bob(), &fp(2)), Trust::Verified);
    // An unknown peer can be neither accepted nor verified.
    let carol = PeerId {
        uid: "carol-uid",
        username: "carol",
        ..bob()
    };
    assert!(matches!(
        store.verify(&carol, &fp(1)),
        Err(IdentityError::UnknownPeer { .. })
    ));
    assert!(matches!(
        store.accept(&carol, &fp(1)),
        Err(IdentityError::UnknownPeer { .. })
    ));
}

#[test]
fn a_second_device_is_a_notice_once_then_switching_between_devices_is_silent() {
    let tmp = private_tempdir();
    let mut store = TrustStore::open(tmp.path()).expect("open");
    decision(&mut store, &bob(), &fp(1));
    store.verify(&bob(), &fp(1)).expect("verify laptop");
    assert!(matches!(
        decision(&mut store, &bob(), &fp(2)),
        TrustDecision::NewDevice { .. }
    ));
    store.accept(&bob(), &fp(2)).expect("accept desktop");
    for _ in 0..3 {
        assert_eq!(
            decision(&mut store, &bob(), &fp(1)),
            TrustDecision::Same { verified: true }
        );
        assert_eq!(
            decision(&mut store, &bob(), &fp(2)),
            TrustDecision::Same { verified: false }
        );
    }
    let rec = store.get(&bob()).expect("record");
    assert_eq!(rec.devices.len(), 2);
    // Each device keeps its own trust.
    assert_eq!(store.trust_of(&bob(), &fp(1)), Trust::Verified);
    assert_eq!(store.trust_of(&bob(), &fp(2)), Trust::Unverified);
}

#[test]
fn a_renamed_user_id_and_a_username_under_a_new_user_id_raise_notices() {
    let tmp = private_tempdir();
    let mut store = TrustStore::open(tmp.path()).expect("open");
    decision(&mut store, &bob(), &fp(1));
    store.verify(&bob(), &fp(1)).expect("verify");

    // Same user id, new name: a notice; the key keeps its trust.
    let renamed = PeerId {
        username: "robert",
        ..bob()
    };
    let o = store.observe(&renamed, &fp(1)).expect("observe");
    assert_eq!(o.decision, TrustDecision::Same { verified: true });
    assert_eq!(
        o.notices,
        vec![IdentityNotice::Renamed {
            from: "bob".into(),
            to: "robert".into()
        }]
    );
    assert_eq!(store.get(&bob()).expect("rec").username, "robert");

    // Someone else now holds the name "robert" (another user id), even with the same key: not
    // the verified person until the user says so.
    let impostor = PeerId {
        uid: "other-uid",
        username: "robert",
        ..bob()
    };
    assert!(
        store.knows_native(&impostor),
        "a downgrade from them is still suspicious"
    );
    let o = store.observe(&impostor, &fp(1)).expect("observe");
    assert_eq!(
        o.notices,
        vec![IdentityNotice::UserIdChanged {
            previous_uid: "bob-uid".into()
        }]
    );
    assert!(matches!(
        o.decision,
        TrustDecision::NewDevice { previous: None }
    ));
    assert_eq!(store.trust_of(&impostor, &fp(1)), Trust::Changed);
    // The original record is untouched.
    assert_eq!(store.trust_of(&bob(), &fp(1)), Trust::Verified);
}

#[test]
fn accounts_and_servers_sharing_a_data_directory_never_share_records() {
    let tmp = private_tempdir();
    let mut store = TrustStore::open(tmp.path()).expect("open");
    decision(&mut store, &bob(), &fp(1));
    store.verify(&bob(), &fp(1)).expect("verify");

    let other_account = PeerId {
        account_uid: "alice2-uid",
        ..bob()
    };
    let other_server = PeerId {
        server: "https://chat.other.org",
        ..bob()
    };
    for scope in [other_account, other_server] {
        assert_eq!(store.trust_of(&scope, &fp(1)), Trust::Unknown);
        assert!(!store.knows_native(&scope));
        assert!(store.get(&scope).is_none());
        // A forged key there is first use in that scope, never "verified" from the other one.
        assert_eq!(decision(&mut store, &scope, &fp(5)), TrustDecision::New);
        assert_eq!(store.trust_of(&scope, &fp(5)), Trust::Unverified);
    }
    // A trailing slash is the same server.
    let slash = PeerId {
        server: "https://chat.example.com/",
        ..bob()
    };
    assert_eq!(store.trust_of(&slash, &fp(1)), Trust::Verified);
    let reopened = TrustStore::open(tmp.path()).expect("reopen");
    assert_eq!(reopened.trust_of(&bob(), &fp(1)), Trust::Verified);
    // In the other account, bob's verified key is one it never accepted.
    assert_eq!(reopened.trust_of(&other_account, &fp(1)), Trust::Changed);
}

#[test]
fn a_version_1_store_is_adopted_by_the_first_account_that_meets_the_peer() {
    let tmp = private_tempdir();
    let v1 = format!(
        r#"{{"version":1,"peers":{{"bob":{{"fingerprint":"{}","first_seen_ms":1,"verified":true,"changed_to":"{}"}}}}}}"#,
        fp(1).to_hex(),
        fp(2).to_hex()
    );
    fs::write(tmp.path().join(TRUST_FILE), v1).expect("write");
    let mut store = TrustStore::open(tmp.path()).expect("open v1");
    assert!(store.knows_native(&bob()));
    assert_eq!(
        decision(&mut store, &bob(), &fp(1)),
        TrustDecision::Same { verified: true }
    );
    // The change pending in version 1 stays pending.
    assert!(matches!(
        decision(&mut store, &bob(), &fp(2)),
        TrustDecision::Pending { .. }
    ));
    // Adopted once: another account does not inherit it.
    let other = PeerId {
        account_uid: "alice2-uid",
        ..bob()
    };
    assert!(!store.knows_native(&other));
    let text = fs::read_to_string(store.path()).expect("read");
    assert!(text.contains("\"version\": 2"), "{text}");
}

#[test]
fn corrupt_trust_store_is_an_error_not_a_reset() {
    let tmp = private_tempdir();
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
    fs::write(
        tmp.path().join(TRUST_FILE),
        br#"{"version":2,"servers":{"s":{"a":{"b":{"username":"bob","first_seen_ms":1,"devices":{"XYZ":{"first_seen_ms":1,"accepted":true,"verified":true}}}}}}}"#,
    )
    .expect("write");
    assert!(matches!(
        TrustStore::open(tmp.path()),
        Err(IdentityError::CorruptTrust { .. })
    ));
}

#[test]
fn writes_replace_atomically_and_leave_no_temp_files() {
    let tmp = private_tempdir();
    let mut store = TrustStore::open(tmp.path()).expect("open");
    for i in 0..5u8 {
        let uid = format!("peer{i}");
        let peer = PeerId {
            uid: &uid,
            username: &uid,
            ..bob()
        };
        store.observe(&peer, &fp(i)).expect("observe");
    }
    let names: Vec<_> = fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![TRUST_FILE.to_owned()]);
}
