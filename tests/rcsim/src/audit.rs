//! The audit: a record of every byte clients sent (websocket text frames, HTTP query strings and
//! bodies) and of everything the server stored. Tests search it to prove that a plaintext or a key
//! never reached the server in the clear, and that OTR messages were not persisted.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a client record reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A websocket text (or binary, lossily decoded) frame.
    Ws,
    /// An HTTP request: `METHOD path?query` on the first line, the body after a newline.
    Http,
}

/// One thing a client sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientRecord {
    /// Websocket connection id (`None` for HTTP).
    pub conn: Option<u64>,
    /// Transport used.
    pub transport: Transport,
    /// The user id the connection was logged in as (HTTP: the `X-User-Id` header), if any.
    pub user: Option<String>,
    /// The bytes as text.
    pub data: String,
}

/// One thing the server persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredRecord {
    /// `message` or `system` (a `chat.otr` system message).
    pub kind: String,
    /// The stored document.
    pub doc: Value,
}

/// A snapshot of the audit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Audit {
    /// Everything clients sent, in arrival order.
    pub client: Vec<ClientRecord>,
    /// Everything ever stored, in order (deletions do not remove entries).
    pub stored: Vec<StoredRecord>,
}

impl Audit {
    /// True when `needle` occurs in anything a client sent or anything stored — in the raw bytes
    /// or in any JSON string value (so text that JSON-escaping changed is still found).
    pub fn contains(&self, needle: &str) -> bool {
        self.client.iter().any(|r| {
            r.data.contains(needle)
                || serde_json::from_str::<Value>(&r.data)
                    .map(|v| value_contains(&v, needle))
                    .unwrap_or(false)
        }) || self
            .stored
            .iter()
            .any(|r| r.doc.to_string().contains(needle) || value_contains(&r.doc, needle))
    }

    /// The stored message documents (chat and system messages), in order.
    pub fn stored_messages(&self) -> Vec<Value> {
        self.stored.iter().map(|r| r.doc.clone()).collect()
    }

    /// Client records sent by the given user id.
    pub fn sent_by(&self, user_id: &str) -> Vec<&ClientRecord> {
        self.client
            .iter()
            .filter(|r| r.user.as_deref() == Some(user_id))
            .collect()
    }
}

fn value_contains(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| value_contains(x, needle)),
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| k.contains(needle) || value_contains(x, needle)),
        _ => false,
    }
}

/// The live, shared audit log.
#[derive(Debug, Default)]
pub struct AuditLog {
    inner: Mutex<Audit>,
}

impl AuditLog {
    /// Records something a client sent.
    pub fn client(
        &self,
        conn: Option<u64>,
        transport: Transport,
        user: Option<String>,
        data: String,
    ) {
        if let Ok(mut a) = self.inner.lock() {
            a.client.push(ClientRecord {
                conn,
                transport,
                user,
                data,
            });
        }
    }

    /// Records a stored document.
    pub fn stored(&self, kind: &str, doc: Value) {
        if let Ok(mut a) = self.inner.lock() {
            a.stored.push(StoredRecord {
                kind: kind.to_string(),
                doc,
            });
        }
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Audit {
        self.inner.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_searches_raw_and_decoded() {
        let log = AuditLog::default();
        log.client(
            Some(1),
            Transport::Ws,
            None,
            r#"{"msg":"say \"hi\""}"#.into(),
        );
        log.stored("message", serde_json::json!({"msg": "stored text"}));
        let a = log.snapshot();
        assert!(a.contains(r#"say "hi""#));
        assert!(a.contains("stored text"));
        assert!(!a.contains("absent"));
        assert_eq!(a.stored_messages().len(), 1);
    }
}
