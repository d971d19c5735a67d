//! The Rocket.Chat ≤ 7.x OTR relay (PROTOCOL.md §3, §4, §6). Every call goes through
//! `Client::call_relay` / `rest_post_relay`, which refuse to send on a login whose server has no
//! relay: a frame queued before a reconnect to an upgraded server is never sent to it.

use super::{Frame, RoomAddr};
use crate::rocketchat::{Client, RcError};
use serde_json::{json, Map, Value};

/// Why a frame did not get through.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The server answered `sendMessage` without a message: it refused it (PROTOCOL.md §4.1:
    /// the method swallows most errors).
    #[error("the server did not accept the message")]
    Refused,
    /// The call failed.
    #[error(transparent)]
    Call(#[from] RcError),
}

/// Performs one frame over the relay.
pub async fn send(client: &Client, room: &RoomAddr, frame: &Frame) -> Result<(), RelayError> {
    match frame {
        Frame::Signal { kind, payload } => {
            let event = format!("{}/otr", room.peer_uid);
            client
                .call_relay(
                    "stream-notify-user",
                    vec![json!(event), json!(kind.as_str()), payload.clone()],
                )
                .await?;
            Ok(())
        }
        Frame::Message { id, msg } => {
            let message = json!({"_id": id, "rid": room.room_id, "msg": msg, "t": "otr"});
            match client.call_relay("sendMessage", vec![message]).await? {
                Some(Value::Object(m)) if m.get("_id").and_then(Value::as_str) == Some(id) => {
                    Ok(())
                }
                _ => Err(RelayError::Refused),
            }
        }
        Frame::Ack { message, ack } => send_ack(client, message, ack).await,
        Frame::System { kind } => {
            client
                .rest_post_relay(
                    "/api/v1/chat.otr",
                    json!({"roomId": room.room_id, "type": kind}),
                )
                .await?;
            Ok(())
        }
        Frame::DeleteOld => {
            client
                .call_relay("deleteOldOTRMessages", vec![json!(room.room_id)])
                .await?;
            Ok(())
        }
    }
}

/// `updateOTRAck({message, ack})`: the message echoed as received (ts replaced); on a strict-check
/// failure (`Match failed`, 7.x), once more with exactly the fields the check demands.
async fn send_ack(client: &Client, message: &Value, ack: &str) -> Result<(), RelayError> {
    let first = client
        .call_relay(
            "updateOTRAck",
            vec![json!({"message": message, "ack": ack})],
        )
        .await;
    match first {
        Err(RcError::Method { error, .. }) if error.code() == "400" => {
            let minimal = minimal_ack_message(message);
            client
                .call_relay(
                    "updateOTRAck",
                    vec![json!({"message": minimal, "ack": ack})],
                )
                .await?;
            Ok(())
        }
        other => other.map(|_| ()).map_err(RelayError::from),
    }
}

/// The exact `{_id, rid, msg, t, ts, u:{_id, username, name}}` shape the 7.x `check()` accepts;
/// a missing display name is filled with the username (the server only type-checks it).
pub fn minimal_ack_message(message: &Value) -> Value {
    let mut out = Map::new();
    for key in ["_id", "rid", "msg", "t", "ts"] {
        if let Some(v) = message.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    let u = message.get("u").cloned().unwrap_or(Value::Null);
    let username = u.get("username").cloned().unwrap_or(json!(""));
    let name = u
        .get("name")
        .filter(|n| n.is_string())
        .cloned()
        .unwrap_or_else(|| username.clone());
    out.insert(
        "u".into(),
        json!({"_id": u.get("_id").cloned().unwrap_or(json!("")), "username": username, "name": name}),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_ack_message_keeps_only_checked_fields_and_fills_name() {
        let m = json!({"_id":"i","rid":"r","msg":"c","t":"otr","ts":{"$date":1},
            "u":{"_id":"a","username":"alice"},"md":[],"_updatedAt":{"$date":2}});
        let out = minimal_ack_message(&m);
        assert_eq!(
            out,
            json!({"_id":"i","rid":"r","msg":"c","t":"otr","ts":{"$date":1},
                "u":{"_id":"a","username":"alice","name":"alice"}})
        );
    }
}
