//! Rooms and peers (PROTOCOL §5): listing and opening 1:1 direct-message rooms, resolving
//! users, and presence (one-off lookups and following changes).

use super::{Client, SubscriptionId};
use crate::engine::Presence;
use crate::rocketchat::presence::follow_params;
use crate::rocketchat::RcError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// A direct-message room (`t == "d"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectRoom {
    /// Room id.
    pub room_id: String,
    /// Member user ids (ours included). OTR only makes sense with exactly two.
    pub uids: Vec<String>,
    /// Member usernames, when the server lists them.
    pub usernames: Vec<String>,
}

impl DirectRoom {
    /// The other member's uid, if this is a 1:1 room with someone else (PROTOCOL §5: peer =
    /// `uids` minus us, only when there are at most two).
    pub fn peer_of(&self, me: &str) -> Option<&str> {
        if self.uids.len() > 2 {
            return None;
        }
        self.uids.iter().map(String::as_str).find(|u| *u != me)
    }
}

/// A user as the server describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    /// User id.
    pub user_id: String,
    /// Username.
    pub username: String,
    /// Display name (empty if none).
    pub name: String,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A room document → a [`DirectRoom`] when it is a DM.
pub(crate) fn direct_room_from(doc: &Value) -> Option<DirectRoom> {
    if doc.get("t").and_then(Value::as_str) != Some("d") {
        return None;
    }
    let room_id = doc
        .get("_id")
        .or_else(|| doc.get("rid"))
        .and_then(Value::as_str)?;
    Some(DirectRoom {
        room_id: room_id.to_owned(),
        uids: strings(doc.get("uids")),
        usernames: strings(doc.get("usernames")),
    })
}

/// `rooms/get` answers a list, or `{update, remove}` when asked for a delta.
pub(crate) fn direct_rooms_from(result: &Value) -> Vec<DirectRoom> {
    let list = result
        .as_array()
        .or_else(|| result.get("update").and_then(Value::as_array));
    list.map(|l| l.iter().filter_map(direct_room_from).collect())
        .unwrap_or_default()
}

fn user_from(body: &Value, what: &str) -> Result<UserRef, RcError> {
    let user = body
        .get("user")
        .ok_or_else(|| RcError::Decode(what.to_owned()))?;
    let s = |k: &str| user.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(UserRef {
        user_id: s("_id").ok_or_else(|| RcError::Decode(what.to_owned()))?,
        username: s("username").ok_or_else(|| RcError::Decode(what.to_owned()))?,
        name: s("name").unwrap_or_default(),
    })
}

/// `users.presence` lists only users who are not offline; everyone asked for gets an entry.
pub(crate) fn presence_from(body: &Value, uids: &[String]) -> HashMap<String, Presence> {
    let mut out: HashMap<String, Presence> = uids
        .iter()
        .map(|u| (u.clone(), Presence::Offline))
        .collect();
    let users = body
        .get("users")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for u in users {
        let (Some(id), Some(status)) = (
            u.get("_id").and_then(Value::as_str),
            u.get("status").and_then(Value::as_str),
        ) else {
            continue;
        };
        if let Some(slot) = out.get_mut(id) {
            *slot = match Presence::from_name(status) {
                Presence::Unknown => Presence::Offline,
                p => p,
            };
        }
    }
    out
}

impl Client {
    /// A DDP method the compatibility layer may replace by REST: `None` when REST is to be used
    /// (REST-only mode, or the method answered "method not found" just now — which switches to
    /// REST-only for good).
    async fn ddp_or_rest(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Option<Option<Value>>, RcError> {
        self.wait_logged_in(method).await?;
        if self.api_paths().rest_only {
            return Ok(None);
        }
        match self.call(method, params).await {
            Err(RcError::Method { error, .. })
                if crate::rocketchat::compat::is_method_not_found(&error) =>
            {
                tracing::info!(
                    method,
                    "DDP method not found; using REST for rooms and DMs from now on"
                );
                self.inner.method_missing.store(true, Ordering::Relaxed);
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Every DM room of ours (DDP `rooms/get`, or REST `rooms.get`), keeping only `t == "d"`.
    pub async fn list_direct_rooms(&self) -> Result<Vec<DirectRoom>, RcError> {
        let result = match self.ddp_or_rest("rooms/get", Vec::new()).await? {
            Some(r) => r.ok_or_else(|| RcError::Decode("rooms/get".into()))?,
            None => self.rest_get("rooms.get", &[]).await?,
        };
        Ok(direct_rooms_from(&result))
    }

    /// Opens (creating if needed) the DM with `username` (DDP `createDirectMessage`, or REST
    /// `im.create`).
    pub async fn open_direct_room(&self, username: &str) -> Result<DirectRoom, RcError> {
        let (doc, what) = match self
            .ddp_or_rest("createDirectMessage", vec![json!(username)])
            .await?
        {
            Some(r) => (r, "createDirectMessage"),
            None => {
                let mut body = self
                    .rest_post("im.create", json!({ "username": username }))
                    .await?;
                (body.get_mut("room").map(Value::take), "im.create")
            }
        };
        let doc = doc.ok_or_else(|| RcError::Decode(what.into()))?;
        let room_id = doc
            .get("rid")
            .or_else(|| doc.get("_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| RcError::Decode(what.into()))?
            .to_owned();
        let mut room = DirectRoom {
            uids: strings(doc.get("uids")),
            usernames: strings(doc.get("usernames")),
            room_id,
        };
        if room.uids.is_empty() {
            // Older servers answer only `{rid}`: read the members from the room itself.
            let info = self
                .rest_get("rooms.info", &[("roomId", &room.room_id)])
                .await?;
            let doc = info
                .get("room")
                .ok_or_else(|| RcError::Decode("rooms.info".into()))?;
            room.uids = strings(doc.get("uids"));
            if room.usernames.is_empty() {
                room.usernames = strings(doc.get("usernames"));
            }
        }
        Ok(room)
    }

    /// Resolves a username (`users.info?username=`).
    pub async fn user_by_username(&self, username: &str) -> Result<UserRef, RcError> {
        let body = self
            .rest_get("users.info", &[("username", username)])
            .await?;
        user_from(&body, "users.info")
    }

    /// Resolves a user id (`users.info?userId=`).
    pub async fn user_by_id(&self, user_id: &str) -> Result<UserRef, RcError> {
        let body = self.rest_get("users.info", &[("userId", user_id)]).await?;
        user_from(&body, "users.info")
    }

    /// Presence of `uids` (`users.presence`); users the server does not list are offline.
    pub async fn presence(&self, uids: &[String]) -> Result<HashMap<String, Presence>, RcError> {
        if uids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = uids.join(",");
        let body = self.rest_get("users.presence", &[("ids", &ids)]).await?;
        Ok(presence_from(&body, uids))
    }

    /// Follows presence changes of `uids` (`stream-user-presence`); they arrive as
    /// [`super::ClientEvent::Stream`] events, read with
    /// [`crate::rocketchat::parse_presence_event`].
    pub async fn follow_presence(&self, uids: &[String]) -> Result<SubscriptionId, RcError> {
        self.subscribe("stream-user-presence", follow_params(uids, &[]))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_direct_rooms() {
        let list = json!([
            {"_id":"Kd9","t":"d","uids":["A","B"],"usernames":["alice-bot","bob"]},
            {"_id":"GENERAL","t":"c"},
            {"_id":"self","t":"d","uids":["A"]}
        ]);
        let rooms = direct_rooms_from(&list);
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].peer_of("A"), Some("B"));
        assert_eq!(rooms[1].peer_of("A"), None);
        let delta = json!({"update":[{"_id":"x","t":"d","uids":["A","B","C"]}],"remove":[]});
        let rooms = direct_rooms_from(&delta);
        assert_eq!(rooms[0].peer_of("A"), None, "multi-user DMs have no peer");
        assert!(direct_rooms_from(&json!("nope")).is_empty());
    }

    #[test]
    fn reads_users_and_presence() {
        let body = json!({"user":{"_id":"B","username":"bob","name":"Bob"},"success":true});
        assert_eq!(
            user_from(&body, "users.info").ok(),
            Some(UserRef {
                user_id: "B".into(),
                username: "bob".into(),
                name: "Bob".into()
            })
        );
        assert!(user_from(&json!({"user":{"username":"bob"}}), "x").is_err());
        let body = json!({"users":[{"_id":"B","status":"away"},{"_id":"Z","status":"online"}],"full":false});
        let p = presence_from(&body, &["B".into(), "C".into()]);
        assert_eq!(p.get("B"), Some(&Presence::Away));
        assert_eq!(p.get("C"), Some(&Presence::Offline));
        assert_eq!(p.len(), 2);
    }
}
