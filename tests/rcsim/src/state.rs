//! The simulated server's data: users, login tokens, DM rooms and their subscriptions, stored
//! messages, and the registry of live websocket connections with their DDP subscriptions.
//! Everything here is plain data behind one mutex in `Sim`; no locking or I/O happens here.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Credential, Status, UserConfig};
use crate::ddp::{date, now_ms, random_id};

/// Identifies one websocket connection for the life of the simulator.
pub type ConnId = u64;

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub enum Out {
    /// Send a text frame.
    Text(String),
    /// Close the socket (fault injection or shutdown).
    Close,
}

/// A user account.
#[derive(Debug)]
pub struct User {
    /// `_id`.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Password (the client sends its SHA-256 digest).
    pub password: Credential,
    /// Status shown while connected.
    pub default_status: Status,
    /// Status forced by the test harness (`set_presence`), winning over everything.
    pub forced_status: Option<Status>,
    /// Last status broadcast, to emit only changes.
    pub announced: Status,
    /// Authenticator-app 2FA secret.
    pub totp_secret: Option<Credential>,
    /// E-mail 2FA on.
    pub email_2fa: bool,
    /// LDAP-only account (no local password).
    pub ldap: bool,
    /// The e-mail code outstanding: (code, expiry ms, wrong attempts).
    pub email_code: Option<(Credential, i64, u32)>,
}

/// A login token (session or personal access token), stored hashed like Meteor does.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// Owner.
    pub uid: String,
    /// Personal access tokens carry no expiry.
    pub personal: bool,
    /// Expiry of session tokens (ms).
    pub expires_ms: i64,
}

/// A DM room.
#[derive(Debug, Clone)]
pub struct Room {
    /// `_id`.
    pub id: String,
    /// Member ids (1 for a self-DM, 2 otherwise).
    pub uids: Vec<String>,
    /// Member usernames, same order.
    pub usernames: Vec<String>,
    /// Subscription `_id` per member, same order.
    pub sub_ids: Vec<String>,
    /// Creation time.
    pub ts_ms: i64,
    /// Last update.
    pub updated_ms: i64,
    /// Stored message count.
    pub msgs: u64,
    /// Time of the last stored message.
    pub lm_ms: Option<i64>,
}

/// One DDP subscription of a connection.
#[derive(Debug, Clone)]
pub struct Sub {
    /// The client's subscription id.
    pub id: Value,
    /// Publication name, e.g. `stream-notify-user`.
    pub name: String,
    /// Event name (first param), e.g. `<uid>/otr`.
    pub event: String,
}

/// A live websocket connection.
#[derive(Debug)]
pub struct Conn {
    /// Writer channel.
    pub tx: UnboundedSender<Out>,
    /// Logged-in user id.
    pub user: Option<String>,
    /// Active subscriptions.
    pub subs: Vec<Sub>,
    /// Users whose presence this connection asked for on `stream-user-presence`.
    pub presence_uids: HashSet<String>,
}

/// Why a state change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// The username or id is taken.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// No such user.
    #[error("user {0:?} not found")]
    UnknownUser(String),
    /// The room id is taken.
    #[error("room {0:?} already exists")]
    RoomExists(String),
}

/// All server data.
#[derive(Debug, Default)]
pub struct State {
    /// Accounts.
    pub users: Vec<User>,
    /// Login tokens by SHA-256 hex of the token.
    pub tokens: HashMap<String, TokenEntry>,
    /// DM rooms.
    pub rooms: Vec<Room>,
    /// Stored messages (chat and system), in order.
    pub messages: Vec<Value>,
    /// Live connections.
    pub conns: HashMap<ConnId, Conn>,
}

/// Lowercase hex SHA-256 (password digests, token hashes).
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Session tokens live 90 days (Meteor's default `loginExpirationInDays`).
const TOKEN_LIFETIME_MS: i64 = 90 * 24 * 3600 * 1000;

impl State {
    /// Adds a user; returns its id.
    pub fn add_user(&mut self, cfg: &UserConfig) -> Result<String, StateError> {
        let id = if cfg.id.is_empty() {
            random_id()
        } else {
            cfg.id.clone()
        };
        if self
            .users
            .iter()
            .any(|u| u.id == id || u.username == cfg.username)
        {
            return Err(StateError::UserExists(cfg.username.clone()));
        }
        for expired in &cfg.expired_tokens {
            self.tokens.insert(
                sha256_hex(expired.expose()),
                TokenEntry {
                    uid: id.clone(),
                    personal: false,
                    expires_ms: now_ms() - 1,
                },
            );
        }
        for pat in &cfg.personal_access_tokens {
            self.tokens.insert(
                sha256_hex(pat.expose()),
                TokenEntry {
                    uid: id.clone(),
                    personal: true,
                    expires_ms: 0,
                },
            );
        }
        self.users.push(User {
            id: id.clone(),
            username: cfg.username.clone(),
            name: cfg.name.clone().unwrap_or_else(|| cfg.username.clone()),
            password: cfg.password.clone(),
            default_status: cfg.default_status,
            forced_status: None,
            announced: Status::Offline,
            totp_secret: cfg.totp_secret.clone(),
            email_2fa: cfg.email_2fa,
            ldap: cfg.ldap,
            email_code: None,
        });
        Ok(id)
    }

    /// User by id.
    pub fn user(&self, uid: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == uid)
    }

    /// Mutable user by id.
    pub fn user_mut(&mut self, uid: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == uid)
    }

    /// User by username.
    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    /// Issues a session token for `uid`; returns `(token, expires_ms)`.
    pub fn issue_token(&mut self, uid: &str) -> (Credential, i64) {
        let token = Credential::new(crate::ddp::random_token());
        let expires_ms = now_ms() + TOKEN_LIFETIME_MS;
        self.tokens.insert(
            sha256_hex(token.expose()),
            TokenEntry {
                uid: uid.to_string(),
                personal: false,
                expires_ms,
            },
        );
        (token, expires_ms)
    }

    /// Looks a token up.
    pub fn token(&self, token: &str) -> Option<&TokenEntry> {
        self.tokens.get(&sha256_hex(token))
    }

    /// The DM between two users (or the self-DM when equal), if any.
    pub fn dm_between(&self, a: &str, b: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| {
            if a == b {
                r.uids.len() == 1 && r.uids[0] == a
            } else {
                r.uids.len() == 2 && r.uids.iter().any(|u| u == a) && r.uids.iter().any(|u| u == b)
            }
        })
    }

    /// Creates the DM between two user ids unless it exists; returns `(room id, created)`.
    pub fn ensure_dm(
        &mut self,
        rid: Option<&str>,
        a: &str,
        b: &str,
    ) -> Result<(String, bool), StateError> {
        let ua = self
            .user(a)
            .ok_or_else(|| StateError::UnknownUser(a.to_string()))?;
        let ub = self
            .user(b)
            .ok_or_else(|| StateError::UnknownUser(b.to_string()))?;
        let (na, nb) = (ua.username.clone(), ub.username.clone());
        if let Some(r) = self.dm_between(a, b) {
            return Ok((r.id.clone(), false));
        }
        let id = match rid {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => random_id(),
        };
        if self.room(&id).is_some() {
            return Err(StateError::RoomExists(id));
        }
        let (uids, usernames) = if a == b {
            (vec![a.to_string()], vec![na])
        } else {
            (vec![a.to_string(), b.to_string()], vec![na, nb])
        };
        let now = now_ms();
        self.rooms.push(Room {
            id: id.clone(),
            sub_ids: uids.iter().map(|_| random_id()).collect(),
            uids,
            usernames,
            ts_ms: now,
            updated_ms: now,
            msgs: 0,
            lm_ms: None,
        });
        Ok((id, true))
    }

    /// Room by id.
    pub fn room(&self, rid: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id == rid)
    }

    /// Whether `uid` is a member of `rid` (can read, type and send there).
    pub fn is_member(&self, rid: &str, uid: &str) -> bool {
        self.room(rid)
            .is_some_and(|r| r.uids.iter().any(|u| u == uid))
    }

    /// Rooms `uid` belongs to.
    pub fn rooms_of(&self, uid: &str) -> Vec<&Room> {
        self.rooms
            .iter()
            .filter(|r| r.uids.iter().any(|u| u == uid))
            .collect()
    }

    /// The room document as Rocket.Chat stores it.
    pub fn room_doc(&self, room: &Room) -> Value {
        let mut doc = json!({
            "_id": room.id,
            "t": "d",
            "usernames": room.usernames,
            "uids": room.uids,
            "usersCount": room.uids.len(),
            "msgs": room.msgs,
            "ts": date(room.ts_ms),
            "_updatedAt": date(room.updated_ms),
        });
        if let (Some(lm), Some(o)) = (room.lm_ms, doc.as_object_mut()) {
            o.insert("lm".into(), date(lm));
        }
        doc
    }

    /// The subscription document of `uid` for `room` (`name` = the peer's username).
    pub fn subscription_doc(&self, room: &Room, uid: &str) -> Option<Value> {
        let idx = room.uids.iter().position(|u| u == uid)?;
        let me = self.user(uid)?;
        let peer_id = room
            .uids
            .iter()
            .find(|u| *u != uid)
            .unwrap_or(&room.uids[idx]);
        let peer = self.user(peer_id)?;
        Some(json!({
            "_id": room.sub_ids[idx],
            "rid": room.id,
            "t": "d",
            "name": peer.username,
            "fname": peer.name,
            "u": { "_id": me.id, "username": me.username, "name": me.name },
            "open": true,
            "alert": false,
            "unread": 0,
            "userMentions": 0,
            "groupMentions": 0,
            "ts": date(room.ts_ms),
            "ls": date(room.ts_ms),
            "_updatedAt": date(room.updated_ms),
        }))
    }

    /// `{_id, username, name}` as put in `message.u`.
    pub fn message_user(&self, uid: &str) -> Option<Value> {
        let u = self.user(uid)?;
        Some(json!({ "_id": u.id, "username": u.username, "name": u.name }))
    }

    /// Number of logged-in connections of `uid`.
    pub fn connections_of(&self, uid: &str) -> usize {
        self.conns
            .values()
            .filter(|c| c.user.as_deref() == Some(uid))
            .count()
    }

    /// Effective presence of `uid`: forced status, else default status while connected, else offline.
    pub fn effective_status(&self, uid: &str) -> Status {
        let Some(u) = self.user(uid) else {
            return Status::Offline;
        };
        if let Some(s) = u.forced_status {
            return s;
        }
        if self.connections_of(uid) > 0 {
            u.default_status
        } else {
            Status::Offline
        }
    }

    /// User document for REST `users.info` / `users.presence`.
    pub fn user_doc(&self, uid: &str) -> Option<Value> {
        let u = self.user(uid)?;
        Some(json!({
            "_id": u.id,
            "username": u.username,
            "name": u.name,
            "status": self.effective_status(uid).as_str(),
            "statusConnection": if self.connections_of(uid) > 0 { "online" } else { "offline" },
            "utcOffset": 0,
            "active": true,
            "type": "user",
            "roles": ["user"],
            "ldap": u.ldap,
        }))
    }

    /// Writers of every connection subscribed to `name`/`event`, except `except`.
    pub fn subscribers(
        &self,
        name: &str,
        event: &str,
        except: Option<ConnId>,
    ) -> Vec<UnboundedSender<Out>> {
        self.conns
            .iter()
            .filter(|(id, c)| {
                Some(**id) != except && c.subs.iter().any(|s| s.name == name && s.event == event)
            })
            .map(|(_, c)| c.tx.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_creation_is_idempotent_and_docs_have_uids() {
        let mut st = State::default();
        let a = st
            .add_user(&UserConfig::new("A", "alice", "pw"))
            .expect("add a");
        let b = st
            .add_user(&UserConfig::new("B", "bob", "pw"))
            .expect("add b");
        assert!(st.add_user(&UserConfig::new("C", "alice", "pw")).is_err());
        let (rid, created) = st.ensure_dm(None, &a, &b).expect("dm");
        assert!(created);
        let (rid2, created2) = st.ensure_dm(None, &b, &a).expect("dm again");
        assert_eq!((rid.clone(), false), (rid2, created2));
        let room = st.room(&rid).expect("room").clone();
        assert_eq!(st.room_doc(&room)["uids"], json!(["A", "B"]));
        let sub = st.subscription_doc(&room, "A").expect("sub");
        assert_eq!(sub["name"], "bob");
        assert_eq!(sha256_hex("password").len(), 64);
    }
}
