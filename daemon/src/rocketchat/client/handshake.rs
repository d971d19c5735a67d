//! Bringing a fresh websocket up to a logged-in session: the DDP `connect` handshake, login
//! (resume token first, then the password), and the REST probes that follow (who am I, what
//! can the server do).

use super::connection::{Outcome, Task};
use super::link::Link;
use super::login::{self, LoginFailure, LoginOk};
use super::{Credentials, RestAuth, SessionInfo};
use crate::rocketchat::capabilities::ServerCapabilities;
use crate::rocketchat::ddp::{self, ServerFrame};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use zeroize::Zeroize;

impl Task {
    /// DDP handshake, login, probes.
    pub(super) async fn establish(&mut self, link: &mut Link) -> Result<SessionInfo, Outcome> {
        link.send(ddp::connect_frame()).await?;
        let deadline = Instant::now() + self.cfg.method_timeout;
        loop {
            match link.next_until(deadline, "connect").await? {
                ServerFrame::Connected { .. } => break,
                ServerFrame::Failed => {
                    return Err(Outcome::Lost(
                        "the server refused DDP protocol version 1".into(),
                    ))
                }
                _ => {}
            }
        }
        let ok = self.login(link).await?;
        let auth = RestAuth {
            user_id: ok.user_id.clone(),
            token: ok.token,
        };
        self.set_auth(Some(auth.clone()));
        let known_username = match &self.cfg.credentials {
            Credentials::Password { username, .. } => Some(username.clone()),
            Credentials::Token { .. } => None,
        };
        let probes = probe(
            self.http.clone(),
            self.base.clone(),
            auth,
            known_username,
            self.cfg.method_timeout,
        );
        tokio::pin!(probes);
        // Keep answering pings while the REST probes run.
        let (username, server) = loop {
            tokio::select! {
                r = &mut probes => break r,
                item = link.ws.next() => {
                    if link.on_message(item).await?.is_some() {
                        tracing::debug!("frame before subscriptions ignored");
                    }
                }
            }
        };
        Ok(SessionInfo {
            user_id: ok.user_id,
            username,
            server,
        })
    }

    async fn login(&mut self, link: &mut Link) -> Result<LoginOk, Outcome> {
        let (resume, password) = match &self.cfg.credentials {
            Credentials::Token { token, .. } => (Some(token.clone()), None),
            Credentials::Password { username, password } => (
                self.resume.clone(),
                Some((username.clone(), password.clone())),
            ),
        };
        if let Some(token) = resume {
            match self.login_call(link, login::resume_params(&token)).await? {
                Ok(ok) => return Ok(ok),
                Err(LoginFailure::Transient(d)) => return Err(Outcome::Lost(d)),
                Err(LoginFailure::Refused(d)) if password.is_none() => {
                    return Err(Outcome::AuthFailed(d))
                }
                Err(LoginFailure::Refused(_)) => {
                    tracing::info!("resume token refused; logging in with the password");
                    self.resume = None;
                }
            }
        }
        let Some((username, password)) = password else {
            return Err(Outcome::AuthFailed("no credentials to log in with".into()));
        };
        match self
            .login_call(link, login::password_params(&username, &password))
            .await?
        {
            Ok(ok) => {
                self.resume = Some(ok.token.clone());
                Ok(ok)
            }
            Err(LoginFailure::Transient(d)) => Err(Outcome::Lost(d)),
            Err(LoginFailure::Refused(d)) => Err(Outcome::AuthFailed(d)),
        }
    }

    async fn login_call(
        &mut self,
        link: &mut Link,
        mut params: Vec<Value>,
    ) -> Result<Result<LoginOk, LoginFailure>, Outcome> {
        let id = self.method_id();
        let frame = ddp::method_frame(&id, "login", &params);
        params.iter_mut().for_each(zeroize_value);
        // The frame text moves into the websocket's buffers, which we cannot wipe.
        link.send(frame).await?;
        let deadline = Instant::now() + self.cfg.method_timeout;
        loop {
            if let ServerFrame::Result {
                id: rid,
                result,
                error,
            } = link.next_until(deadline, "login").await?
            {
                if rid != id {
                    continue;
                }
                if let Some(e) = error {
                    return Ok(Err(login::classify(&e)));
                }
                return login::read_login_result(result).map(Ok).ok_or_else(|| {
                    Outcome::Lost("the login answer had no user id or token".into())
                });
            }
        }
    }
}

/// Who we are and what the server can do, after login.
async fn probe(
    http: Option<reqwest::Client>,
    base: String,
    auth: RestAuth,
    known_username: Option<String>,
    timeout: Duration,
) -> (String, ServerCapabilities) {
    let Some(http) = http else {
        let why = "the HTTP client could not be initialised";
        return (
            known_username.unwrap_or_default(),
            ServerCapabilities::unknown(why),
        );
    };
    let username = match known_username {
        Some(u) => u,
        None => login::whoami(&http, &base, &auth, timeout)
            .await
            .unwrap_or_default(),
    };
    (
        username,
        login::probe_capabilities(&http, &base, &auth, timeout).await,
    )
}

/// Wipes every string in a JSON value (login params hold the token or password digest).
fn zeroize_value(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(zeroize_value),
        Value::Object(o) => o.values_mut().for_each(zeroize_value),
        _ => {}
    }
}
