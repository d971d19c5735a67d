//! REST calls with the login's `X-User-Id` / `X-Auth-Token` headers, and the URL arithmetic
//! shared with the websocket.

use super::{Client, RestAuth};
use crate::rocketchat::RcError;
use reqwest::Url;
use serde_json::Value;
use std::time::Duration;

/// The normalised server base (`https://host[/prefix]`, no trailing slash) and its DDP endpoint
/// (`wss://host[/prefix]/websocket`).
pub(super) fn endpoints(server_url: &str) -> Result<(String, String), RcError> {
    let url = Url::parse(server_url.trim())
        .map_err(|_| RcError::Config("server url is not a valid URL".into()))?;
    let ws_scheme = match url.scheme() {
        "https" => "wss",
        "http" => "ws",
        other => {
            return Err(RcError::Config(format!(
                "server url scheme `{other}` is not http(s)"
            )))
        }
    };
    if url.host_str().is_none() {
        return Err(RcError::Config("server url has no host".into()));
    }
    let base = url.as_str().trim_end_matches('/').to_owned();
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(&base);
    Ok((base.clone(), format!("{ws_scheme}://{rest}/websocket")))
}

/// `/api/info` stays as is; `im.list` becomes `/api/v1/im.list`.
fn full_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/api/v1/{path}")
    }
}

/// GET with auth headers (when known); decodes the JSON body; `success:false` is an error.
pub(super) async fn get(
    http: &reqwest::Client,
    base: &str,
    auth: Option<&RestAuth>,
    path: &str,
    query: &[(&str, &str)],
    timeout: Duration,
) -> Result<Value, RcError> {
    let path = full_path(path);
    let req = http
        .get(format!("{base}{path}"))
        .query(query)
        .timeout(timeout);
    send(with_auth(req, auth), &path).await
}

/// POST a JSON body with auth headers.
pub(super) async fn post(
    http: &reqwest::Client,
    base: &str,
    auth: Option<&RestAuth>,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, RcError> {
    let path = full_path(path);
    let req = http
        .post(format!("{base}{path}"))
        .json(body)
        .timeout(timeout);
    send(with_auth(req, auth), &path).await
}

fn with_auth(req: reqwest::RequestBuilder, auth: Option<&RestAuth>) -> reqwest::RequestBuilder {
    match auth {
        Some(a) => req
            .header("X-User-Id", &a.user_id)
            .header("X-Auth-Token", a.token.expose()),
        None => req,
    }
}

async fn send(req: reqwest::RequestBuilder, path: &str) -> Result<Value, RcError> {
    // reqwest errors may include the URL (with the query), never headers; keep only the kind.
    let resp = req
        .send()
        .await
        .map_err(|e| RcError::Io(io_kind(&e, path)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(RcError::Http {
            path: path.to_owned(),
            status: status.as_u16(),
        });
    }
    let body: Value = resp
        .json()
        .await
        .map_err(|_| RcError::Decode(path.to_owned()))?;
    if body.get("success") == Some(&Value::Bool(false)) {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(RcError::Api {
            path: path.to_owned(),
            error: error.to_owned(),
        });
    }
    Ok(body)
}

fn io_kind(e: &reqwest::Error, path: &str) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("REST {path}: {kind}")
}

impl Client {
    /// `GET` a REST endpoint (`"im.list"` → `/api/v1/im.list`; paths starting with `/` are
    /// taken from the server root). Waits for a login first.
    pub async fn rest_get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, RcError> {
        let auth = self.rest_auth(path).await?;
        get(
            self.http()?,
            &self.inner.base_url,
            Some(&auth),
            path,
            query,
            self.inner.method_timeout,
        )
        .await
    }

    /// `POST` a JSON body to a REST endpoint.
    pub async fn rest_post(&self, path: &str, body: Value) -> Result<Value, RcError> {
        let auth = self.rest_auth(path).await?;
        post(
            self.http()?,
            &self.inner.base_url,
            Some(&auth),
            path,
            &body,
            self.inner.method_timeout,
        )
        .await
    }

    /// [`Client::rest_post`] for the 7.x OTR relay's REST call (`chat.otr`): waits for a login
    /// and refuses with [`RcError::NoRelay`] when that login's server has no relay. (REST does
    /// not go through the connection task, so this checks the login current just before the
    /// request, not the one it is sent on; 8.x servers have no `chat.otr` to store anything.)
    pub async fn rest_post_relay(&self, path: &str, body: Value) -> Result<Value, RcError> {
        self.wait_logged_in(path).await?;
        if !self.session().is_some_and(|s| s.server.otr_relay) {
            return Err(RcError::NoRelay {
                method: path.to_owned(),
            });
        }
        self.rest_post(path, body).await
    }

    /// The token of the latest login; it stays valid for REST while the websocket reconnects.
    async fn rest_auth(&self, path: &str) -> Result<RestAuth, RcError> {
        if let Some(a) = self.current_auth() {
            return Ok(a);
        }
        self.wait_logged_in(path).await?;
        self.current_auth().ok_or(RcError::NotConnected)
    }

    fn http(&self) -> Result<&reqwest::Client, RcError> {
        self.inner
            .http
            .as_ref()
            .ok_or_else(|| RcError::Config("the HTTP client could not be initialised".into()))
    }

    fn current_auth(&self) -> Option<RestAuth> {
        // A poisoned lock only means a writer panicked mid-assignment of a whole value.
        match self.inner.auth.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_scheme_and_prefix() {
        let (b, w) = endpoints("https://chat.example.com/").unwrap_or_default();
        assert_eq!(b, "https://chat.example.com");
        assert_eq!(w, "wss://chat.example.com/websocket");
        let (b, w) = endpoints("http://127.0.0.1:3000/chat").unwrap_or_default();
        assert_eq!(b, "http://127.0.0.1:3000/chat");
        assert_eq!(w, "ws://127.0.0.1:3000/chat/websocket");
        assert!(matches!(endpoints("ftp://x"), Err(RcError::Config(_))));
        assert!(matches!(endpoints("not a url"), Err(RcError::Config(_))));
        assert_eq!(full_path("im.list"), "/api/v1/im.list");
        assert_eq!(full_path("/api/info"), "/api/info");
    }
}
