//! The account's 1:1 direct-message rooms, indexed by room id and by peer username.
//!
//! Only rooms of type `d` with exactly two members (us and one peer) are kept: self-DMs and
//! multi-user DMs cannot carry OTR (PROTOCOL.md §5).

use super::types::Presence;
use std::collections::HashMap;

/// One DM room and who is on the other end.
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    /// Room id.
    pub room_id: String,
    /// The other member's uid, derived from the room's `uids` (never from an event).
    pub peer_uid: String,
    /// The other member's username.
    pub peer_username: String,
    /// Last known presence of the peer.
    pub presence: Presence,
}

/// Rooms by id, with a username index.
#[derive(Debug, Default)]
pub struct RoomRegistry {
    by_id: HashMap<String, Room>,
    by_username: HashMap<String, String>,
    by_uid: HashMap<String, String>,
}

impl RoomRegistry {
    /// Adds or replaces a DM from its member lists; returns the room if it is a 1:1 DM with a peer.
    pub fn upsert(
        &mut self,
        my_uid: &str,
        room_id: &str,
        uids: &[String],
        usernames: &[String],
        my_username: &str,
    ) -> Option<&Room> {
        let peers: Vec<&String> = uids.iter().filter(|u| u.as_str() != my_uid).collect();
        if uids.len() != 2 || peers.len() != 1 {
            return None;
        }
        let peer_uid = peers[0].clone();
        // usernames are not ordered like uids; the peer's is the one that is not ours.
        let peer_username = usernames
            .iter()
            .find(|u| u.as_str() != my_username)
            .cloned()
            .unwrap_or_default();
        if peer_username.is_empty() {
            return None;
        }
        let presence = self
            .by_id
            .get(room_id)
            .map(|r| r.presence)
            .unwrap_or_default();
        self.by_username
            .insert(peer_username.clone(), room_id.to_owned());
        self.by_uid.insert(peer_uid.clone(), room_id.to_owned());
        self.by_id.insert(
            room_id.to_owned(),
            Room {
                room_id: room_id.to_owned(),
                peer_uid,
                peer_username,
                presence,
            },
        );
        self.by_id.get(room_id)
    }

    /// The room with this id.
    pub fn get(&self, room_id: &str) -> Option<&Room> {
        self.by_id.get(room_id)
    }

    /// The DM with this peer username.
    pub fn by_username(&self, username: &str) -> Option<&Room> {
        self.by_username
            .get(username)
            .and_then(|id| self.by_id.get(id))
    }

    /// The DM with this peer uid.
    #[cfg(test)]
    pub fn by_peer_uid(&self, uid: &str) -> Option<&Room> {
        self.by_uid.get(uid).and_then(|id| self.by_id.get(id))
    }

    /// Records a peer's presence; returns the room id if that peer has a DM with us.
    pub fn set_presence(&mut self, uid: &str, presence: Presence) -> Option<String> {
        let id = self.by_uid.get(uid)?.clone();
        if let Some(room) = self.by_id.get_mut(&id) {
            room.presence = presence;
        }
        Some(id)
    }

    /// Every room, sorted by peer username.
    pub fn all(&self) -> Vec<&Room> {
        let mut rooms: Vec<&Room> = self.by_id.values().collect();
        rooms.sort_by(|a, b| a.peer_username.cmp(&b.peer_username));
        rooms
    }

    /// Peer uids of every room (for the presence subscription).
    pub fn peer_uids(&self) -> Vec<String> {
        self.by_id.values().map(|r| r.peer_uid.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn keeps_only_one_to_one_dms_and_indexes_them() {
        let mut reg = RoomRegistry::default();
        assert!(reg
            .upsert(
                "me",
                "r1",
                &s(&["me", "bob"]),
                &s(&["alice", "bobby"]),
                "alice"
            )
            .is_some());
        assert!(reg
            .upsert("me", "self", &s(&["me"]), &s(&["alice"]), "alice")
            .is_none());
        assert!(reg
            .upsert(
                "me",
                "group",
                &s(&["me", "b", "c"]),
                &s(&["alice", "b", "c"]),
                "alice"
            )
            .is_none());
        let room = reg.by_username("bobby").expect("indexed");
        assert_eq!(room.peer_uid, "bob");
        assert_eq!(
            reg.by_peer_uid("bob").map(|r| r.room_id.as_str()),
            Some("r1")
        );
        assert_eq!(
            reg.set_presence("bob", Presence::Online).as_deref(),
            Some("r1")
        );
        assert_eq!(reg.get("r1").map(|r| r.presence), Some(Presence::Online));
        assert!(reg.set_presence("stranger", Presence::Online).is_none());
    }
}
