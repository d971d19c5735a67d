//! The streamer's read and write rules (`allowRead` / `allowWrite`) per stream, for 7.x (§3.3,
//! §12.7) and 8.x (§0, §12). Pure decisions over a state snapshot; emitting happens in `streams`.

use serde_json::Value;

use crate::config::{Mode, SimConfig};
use crate::state::State;

/// Who is asking.
pub struct Caller<'a> {
    /// Logged-in user id.
    pub uid: Option<&'a str>,
}

/// Splits `<id>/<event>` the way `eventName.split('/')` destructures `[id, e]`.
pub fn split_event(event: &str) -> (&str, &str) {
    let mut parts = event.split('/');
    let id = parts.next().unwrap_or("");
    let e = parts.next().unwrap_or("");
    (id, e)
}

/// Whether `caller` may subscribe to `stream`/`event`.
pub fn allow_read(
    cfg: &SimConfig,
    st: &State,
    caller: &Caller<'_>,
    stream: &str,
    event: &str,
) -> bool {
    let Some(uid) = caller.uid else {
        // Every stream the simulator serves except notify-all needs a login.
        return stream == "stream-notify-all";
    };
    match stream {
        "stream-notify-user" => {
            let (target, e) = split_event(event);
            // ≤ 7.x: `<uid>/otr` needs OTR_Enable. 8.x removed that rule with OTR itself: the
            // user stream only checks the uid (PROTOCOL.md §3.3) — writes are what 8.x drops.
            if e == "otr" && cfg.mode == Mode::V7 && !cfg.otr_enable {
                return false;
            }
            target == uid
        }
        "stream-room-messages" => event == "__my_messages__" || st.is_member(event, uid),
        "stream-notify-room" => {
            let (rid, _) = split_event(event);
            st.is_member(rid, uid)
        }
        "stream-user-presence" | "stream-notify-logged" | "stream-notify-all" => true,
        // notify-room-users has allowRead('none'); the room stream of messages is read above.
        _ => false,
    }
}

/// `stream-notify-user` write rule.
pub fn allow_notify_user_write(
    cfg: &SimConfig,
    caller: &Caller<'_>,
    event: &str,
    args: &[Value],
) -> bool {
    if caller.uid.is_none() {
        return false;
    }
    let (_, e) = split_event(event);
    match cfg.mode {
        // 8.x: only `video-conference` (validated against a stored call — the simulator has none)
        // and `media-calls` (consumed by the server, never forwarded) are writable.
        Mode::V8 => false,
        Mode::V7 => {
            let kind = args.first().and_then(Value::as_str);
            if e == "otr" && matches!(kind, Some("handshake" | "acknowledge")) {
                return cfg.otr_enable;
            }
            // `video-conference` writes are validated against a stored call: none exist here.
            e != "video-conference"
        }
    }
}

/// Path A: `stream-notify-room` `<rid>/user-activity` (`canType` + `args[0]` is the caller's
/// username, or display name with `UI_Use_Real_Name`).
pub fn allow_notify_room_write(
    cfg: &SimConfig,
    st: &State,
    caller: &Caller<'_>,
    event: &str,
    args: &[Value],
) -> bool {
    let Some(uid) = caller.uid else {
        return false;
    };
    let (rid, e) = split_event(event);
    if e != "user-activity" || !st.is_member(rid, uid) {
        return false;
    }
    let Some(user) = st.user(uid) else {
        return false;
    };
    let who = args.first().and_then(Value::as_str);
    if cfg.ui_use_real_name {
        who == Some(user.name.as_str())
    } else {
        who == Some(user.username.as_str())
    }
}

/// Path B: `stream-notify-room-users` `<rid>/<event>`: the members to notify (every member but
/// the caller), or `None` when the write is refused.
pub fn notify_room_users_targets(
    cfg: &SimConfig,
    st: &State,
    caller: &Caller<'_>,
    event: &str,
) -> Option<Vec<String>> {
    let uid = caller.uid?;
    let (rid, e) = split_event(event);
    if cfg.notify_room_users_allowlist && !matches!(e, "video-conference" | "userData") {
        return None;
    }
    if e.is_empty() || !st.is_member(rid, uid) {
        return None;
    }
    let room = st.room(rid)?;
    Some(room.uids.iter().filter(|u| *u != uid).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;
    use serde_json::json;

    fn setup() -> (SimConfig, State) {
        let mut st = State::default();
        let mut a = UserConfig::new("A", "alice", "pw");
        a.name = Some("Alice".into());
        st.add_user(&a).expect("a");
        st.add_user(&UserConfig::new("B", "bob", "pw")).expect("b");
        st.add_user(&UserConfig::new("C", "carol", "pw"))
            .expect("c");
        st.ensure_dm(Some("R"), "A", "B").expect("dm");
        (SimConfig::default(), st)
    }

    #[test]
    fn otr_read_needs_own_uid_and_setting() {
        let (mut cfg, st) = setup();
        let a = Caller { uid: Some("A") };
        assert!(allow_read(&cfg, &st, &a, "stream-notify-user", "A/otr"));
        assert!(!allow_read(&cfg, &st, &a, "stream-notify-user", "B/otr"));
        cfg.otr_enable = false;
        assert!(!allow_read(&cfg, &st, &a, "stream-notify-user", "A/otr"));
        cfg.mode = Mode::V8;
        assert!(allow_read(&cfg, &st, &a, "stream-notify-user", "A/otr"));
        assert!(allow_read(
            &cfg,
            &st,
            &a,
            "stream-notify-user",
            "A/video-conference"
        ));
    }

    #[test]
    fn otr_write_rules_7x_and_8x() {
        let (mut cfg, _) = setup();
        let a = Caller { uid: Some("A") };
        let hs = [json!("handshake"), json!({})];
        let end = [json!("end"), json!({})];
        assert!(allow_notify_user_write(&cfg, &a, "B/otr", &hs));
        cfg.otr_enable = false;
        assert!(!allow_notify_user_write(&cfg, &a, "B/otr", &hs));
        assert!(allow_notify_user_write(&cfg, &a, "B/otr", &end));
        assert!(!allow_notify_user_write(
            &cfg,
            &Caller { uid: None },
            "B/otr",
            &end
        ));
        cfg.mode = Mode::V8;
        assert!(!allow_notify_user_write(&cfg, &a, "B/otr", &end));
    }

    #[test]
    fn path_a_and_b() {
        let (mut cfg, st) = setup();
        let a = Caller { uid: Some("A") };
        let c = Caller { uid: Some("C") };
        assert!(allow_notify_room_write(
            &cfg,
            &st,
            &a,
            "R/user-activity",
            &[json!("alice")]
        ));
        assert!(!allow_notify_room_write(
            &cfg,
            &st,
            &a,
            "R/user-activity",
            &[json!("bob")]
        ));
        assert!(!allow_notify_room_write(
            &cfg,
            &st,
            &c,
            "R/user-activity",
            &[json!("carol")]
        ));
        assert!(!allow_notify_room_write(
            &cfg,
            &st,
            &a,
            "R/typing",
            &[json!("alice")]
        ));
        cfg.ui_use_real_name = true;
        assert!(allow_notify_room_write(
            &cfg,
            &st,
            &a,
            "R/user-activity",
            &[json!("Alice")]
        ));
        assert!(!allow_notify_room_write(
            &cfg,
            &st,
            &a,
            "R/user-activity",
            &[json!("alice")]
        ));
        assert_eq!(
            notify_room_users_targets(&cfg, &st, &a, "R/video-conference"),
            Some(vec!["B".to_string()])
        );
        assert_eq!(notify_room_users_targets(&cfg, &st, &a, "R/otr"), None);
        assert_eq!(
            notify_room_users_targets(&cfg, &st, &c, "R/video-conference"),
            None
        );
        cfg.notify_room_users_allowlist = false;
        assert!(notify_room_users_targets(&cfg, &st, &a, "R/otr").is_some());
    }
}
