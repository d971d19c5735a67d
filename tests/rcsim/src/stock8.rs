//! A model of what the stock Rocket.Chat 8.x web client does with the two realtime events otrd
//! uses on 8.x (PROTOCOL.md §12.2, §12.3), so tests can show that a stock user in the room sees
//! nothing:
//! - `UserAction` (`apps/meteor/client/lib/UserAction.ts`): on `<rid>/user-activity`, ignores
//!   its own name, takes `rid = extras?.tmid || rid`, then for each known activity sets it when
//!   listed and clears it otherwise — the only visible effect is the typing/recording/uploading/
//!   playing indicator.
//! - `VideoConfManager` (`apps/meteor/client/lib/VideoConfManager.ts`): on
//!   `<uid>/video-conference`, returns early unless `params` carries `callId`, `uid` and `rid`;
//!   otherwise the call rings.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The activities `UserAction` knows.
pub const ACTIVITIES: [&str; 4] = [
    "user-typing",
    "user-recording",
    "user-uploading",
    "user-playing",
];

/// What the user can see that these events change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Visible {
    /// `(room or thread, activity)` → usernames shown doing it.
    pub indicators: BTreeMap<(String, String), BTreeSet<String>>,
    /// Incoming calls ringing: `(callId, rid)`.
    pub ringing: Vec<(String, String)>,
}

/// One stock 8.x web client, logged in as `username`.
#[derive(Debug, Clone)]
pub struct StockClient8 {
    username: String,
    visible: Visible,
}

impl StockClient8 {
    /// A client with nothing shown.
    pub fn new(username: &str) -> Self {
        Self {
            username: username.to_string(),
            visible: Visible::default(),
        }
    }

    /// What is shown now.
    pub fn visible(&self) -> &Visible {
        &self.visible
    }

    /// `stream-notify-room` `<rid>/user-activity` with `args = [username, activities, extras]`.
    pub fn on_user_activity(&mut self, rid: &str, args: &[Value]) {
        let Some(name) = args.first().and_then(Value::as_str) else {
            return;
        };
        if name == self.username {
            return;
        }
        let activities: Vec<&str> = args
            .get(1)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let room = args
            .get(2)
            .and_then(|e| e.get("tmid"))
            .and_then(Value::as_str)
            .unwrap_or(rid)
            .to_string();
        for activity in ACTIVITIES {
            let key = (room.clone(), activity.to_string());
            if activities.contains(&activity) {
                self.visible
                    .indicators
                    .entry(key)
                    .or_default()
                    .insert(name.to_string());
            } else if let Some(set) = self.visible.indicators.get_mut(&key) {
                set.remove(name);
                if set.is_empty() {
                    self.visible.indicators.remove(&key);
                }
            }
        }
    }

    /// `stream-notify-user` `<uid>/video-conference` with `args = [data]`.
    pub fn on_video_conference(&mut self, args: &[Value]) {
        let Some(params) = args.first().and_then(|d| d.get("params")) else {
            return;
        };
        let field = |k: &str| params.get(k).and_then(Value::as_str);
        let (Some(call), Some(_uid), Some(rid)) = (field("callId"), field("uid"), field("rid"))
        else {
            return;
        };
        self.visible
            .ringing
            .push((call.to_string(), rid.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typing_and_calls_show_but_otrd_frames_do_not() {
        let mut c = StockClient8::new("carol");
        c.on_user_activity("R", &[json!("alice"), json!(["user-typing"]), json!({})]);
        assert_eq!(c.visible().indicators.len(), 1);
        c.on_user_activity("R", &[json!("alice"), json!([]), json!({"otrd": {"v": 1}})]);
        assert_eq!(
            c.visible(),
            &Visible::default(),
            "empty activities only clear"
        );
        c.on_video_conference(&[json!({"action": "otrd", "params": {}, "otrd": {}})]);
        assert!(c.visible().ringing.is_empty());
        c.on_video_conference(&[
            json!({"action": "call", "params": {"callId": "x", "uid": "u", "rid": "R"}}),
        ]);
        assert_eq!(c.visible().ringing.len(), 1);
    }
}
