//! Bringing a fresh websocket up to a logged-in session: the DDP `connect` handshake, login, and
//! the REST probes that follow (who am I, what can the server do).
//!
//! Login, in the order real servers need it:
//! 1. a resume token — a personal access token, or the token of our last login — over DDP
//!    `login {resume}` (the only DDP login the microservices' endpoint accepts);
//! 2. with a password and no token: REST `POST /api/v1/login` *before* the websocket is opened
//!    ([`Task::rest_login`]), so waiting for a two-factor code holds no idle websocket open,
//!    then DDP resume with the token it returned;
//! 3. only where the REST login is absent: DDP `login` with the password digest, and the
//!    `{ldap: true, …}` form when the server says the user has no local password.
//!
//! A second factor on the DDP fallback is handled like on REST: the code is obtained with no
//! websocket open and sent on the next connection, wrapped as `{totp: {login, code}}`.

use super::auth::{self, CodeError, RestAnswer, SecondFactor};
use super::connection::{Outcome, Task};
use super::link::Link;
use super::login::{self, LoginFailure, LoginOk};
use super::twofactor::Code;
use super::{Credentials, LoginInfo, LoginMethod, RestAuth, SessionInfo};
use crate::rocketchat::capabilities::ServerCapabilities;
use crate::rocketchat::ddp::{self, ServerFrame};
use crate::secure::SecretString;
use futures::StreamExt;
use serde_json::{json, Value};
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
            Credentials::Token { .. } => self.rest_username.clone(),
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
            login: self.login_info.clone(),
        })
    }

    async fn login(&mut self, link: &mut Link) -> Result<LoginOk, Outcome> {
        let password = match &self.cfg.credentials {
            Credentials::Token { token, .. } => {
                let token = token.clone();
                return match self.login_call(link, login::resume_params(&token)).await? {
                    Ok(ok) => {
                        self.login_info = LoginInfo {
                            method: LoginMethod::Token,
                            ..LoginInfo::default()
                        };
                        Ok(ok)
                    }
                    Err(LoginFailure::Refused(d)) => Err(Outcome::AuthFailed(token_refused(&d))),
                    Err(LoginFailure::Transient(d)) => Err(Outcome::Lost(d)),
                    Err(LoginFailure::SecondFactor(_)) => Err(Outcome::AuthFailed(
                        "the server asked for a second factor on a token login".into(),
                    )),
                };
            }
            Credentials::Password { username, password } => (username.clone(), password.clone()),
        };
        if let Some(token) = self.resume.clone() {
            match self.login_call(link, login::resume_params(&token)).await? {
                Ok(ok) => {
                    self.fresh_token = false;
                    return Ok(ok);
                }
                Err(LoginFailure::Transient(d)) => return Err(Outcome::Lost(d)),
                Err(LoginFailure::SecondFactor(_)) | Err(LoginFailure::Refused(_))
                    if self.fresh_token =>
                {
                    // Just issued by REST and refused at once: no immediate retry loop.
                    self.resume = None;
                    self.fresh_token = false;
                    return Err(Outcome::Lost(
                        "the server refused the token its REST login had just issued".into(),
                    ));
                }
                Err(_) => {
                    tracing::info!("session token refused; logging in with the password again");
                    self.resume = None;
                    if !self.rest_absent {
                        return Err(Outcome::Retry(
                            "the session token expired; logging in again".into(),
                        ));
                    }
                }
            }
        }
        self.ddp_password_login(link, &password.0, &password.1)
            .await
    }

    /// The fallback for servers without REST login: DDP password digest, then the LDAP form if
    /// the server says the user has no local password.
    async fn ddp_password_login(
        &mut self,
        link: &mut Link,
        username: &str,
        password: &SecretString,
    ) -> Result<LoginOk, Outcome> {
        loop {
            let base = if self.ldap {
                ldap_params(username, password)
            } else {
                login::password_params(username, password)
            };
            let mut code = self.ddp_code.take();
            let params = match &code {
                Some(c) => wrap_totp(base, &c.code),
                None => base,
            };
            match self.login_call(link, params).await? {
                Ok(ok) => {
                    if let Some(c) = code.as_mut() {
                        c.answer(Ok("logged in".into()));
                    }
                    self.login_info = LoginInfo {
                        method: if self.ldap {
                            LoginMethod::Ldap
                        } else {
                            LoginMethod::Password
                        },
                        rest: false,
                        two_factor: self.second_factor_used,
                    };
                    self.resume = Some(ok.token.clone());
                    return Ok(ok);
                }
                Err(LoginFailure::SecondFactor(sf)) => {
                    self.after_refused_code(code, &sf);
                    self.pending_second_factor = Some(sf);
                    return Err(Outcome::Retry(
                        "two-factor code required; obtaining one".into(),
                    ));
                }
                Err(LoginFailure::Refused(d)) if !self.ldap && no_local_password(&d) => {
                    tracing::info!("no local password for this user; trying the LDAP login");
                    self.ldap = true;
                }
                Err(LoginFailure::Refused(d)) => {
                    if let Some(c) = code.as_mut() {
                        c.answer(Err(d.clone()));
                    }
                    return Err(Outcome::AuthFailed(d));
                }
                Err(LoginFailure::Transient(d)) => {
                    if let Some(c) = code.as_mut() {
                        c.answer(Err(d.clone()));
                    }
                    return Err(Outcome::Lost(d));
                }
            }
        }
    }

    /// Before the websocket opens: a REST login when we have a password and no token, or the
    /// code a DDP fallback login asked for. Waiting for a code here holds no connection open.
    pub(super) async fn before_connect(&mut self) -> Result<(), Outcome> {
        let Credentials::Password { username, password } = self.cfg.credentials.clone() else {
            return Ok(());
        };
        if let Some(sf) = self.pending_second_factor.take() {
            self.second_factor_used = Some(sf.method);
            let code = self.next_code(&sf).await?;
            self.ddp_code = Some(code);
            return Ok(());
        }
        if self.resume.is_some() || self.rest_absent {
            return Ok(());
        }
        self.rest_login(&username, &password).await
    }

    /// REST login, with as many code rounds as the server asks for (paced by the gate).
    async fn rest_login(&mut self, username: &str, password: &SecretString) -> Result<(), Outcome> {
        let Some(http) = self.http.clone() else {
            return Err(Outcome::AuthFailed(
                "the HTTP client could not be initialised".into(),
            ));
        };
        let mut code: Option<Code> = None;
        let mut used: Option<super::auth::TwoFactorMethod> = None;
        loop {
            let body = auth::body(username, password, code.as_ref().map(|c| &c.code));
            match auth::post(&http, &self.base, body, self.cfg.method_timeout).await {
                RestAnswer::Ok(ok, me) => {
                    if let Some(c) = code.as_mut() {
                        c.answer(Ok("logged in".into()));
                    }
                    self.login_info = LoginInfo {
                        method: if me.as_ref().is_some_and(|m| m.ldap) {
                            LoginMethod::Ldap
                        } else {
                            LoginMethod::Password
                        },
                        rest: true,
                        two_factor: used,
                    };
                    self.rest_username = me.map(|m| m.username);
                    self.resume = Some(ok.token);
                    self.fresh_token = true;
                    return Ok(());
                }
                RestAnswer::SecondFactor(sf) => {
                    self.after_refused_code(code.take(), &sf);
                    used = Some(sf.method);
                    if sf.kind == CodeError::MaxAttempts {
                        // Ask afresh (the server sends a new e-mail code on a code-less
                        // attempt), paced like any other attempt.
                        self.wait_for_slot().await;
                        continue;
                    }
                    code = Some(self.next_code(&sf).await?);
                }
                RestAnswer::Absent => {
                    tracing::info!("the server has no REST login; using DDP login");
                    if let Some(c) = code.as_mut() {
                        c.answer(Err("the server has no REST login; retrying over DDP".into()));
                    }
                    self.rest_absent = true;
                    return Ok(());
                }
                RestAnswer::Refused(d) => {
                    if let Some(c) = code.as_mut() {
                        c.answer(Err(d.clone()));
                    }
                    return Err(Outcome::AuthFailed(d));
                }
                RestAnswer::Transient(d) => {
                    if let Some(c) = code.as_mut() {
                        c.answer(Err(d.clone()));
                    }
                    return Err(Outcome::Lost(d));
                }
            }
        }
    }

    /// A code the server refused is remembered (never sent again) and its sender told why.
    fn after_refused_code(&mut self, code: Option<Code>, sf: &SecondFactor) {
        let Some(mut c) = code else { return };
        if sf.kind != CodeError::Required {
            self.gate.refuse(&c.code);
        }
        c.answer(Err(super::twofactor::refusal(sf)));
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

/// "log in again", with the server's reason and what to do.
fn token_refused(detail: &str) -> String {
    format!(
        "log in again: the server no longer accepts the token ({detail}); create a new personal \
         access token (README: SSO accounts) and restart otrd"
    )
}

/// Meteor's answers when the account has no local password (LDAP-only) or is unknown locally
/// (an LDAP user never synced): the LDAP form may still work.
fn no_local_password(detail: &str) -> bool {
    detail.contains("User has no password set") || detail.contains("User not found")
}

/// `{ldap: true, username, ldapPass, ldapOptions: {}}`, as the web client sends it.
fn ldap_params(username: &str, password: &SecretString) -> Vec<Value> {
    vec![json!({
        "ldap": true,
        "username": username,
        "ldapPass": password.expose(),
        "ldapOptions": {},
    })]
}

/// `{totp: {login: <params>, code}}`: the server's two-factor login handler.
fn wrap_totp(mut params: Vec<Value>, code: &SecretString) -> Vec<Value> {
    let login = params.pop().unwrap_or(Value::Null);
    vec![json!({ "totp": { "login": login, "code": code.expose().trim() } })]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_and_totp_params_have_the_servers_shape() {
        let pw = SecretString::from("pw");
        let p = wrap_totp(ldap_params("alice", &pw), &SecretString::from(" 123456\n"));
        assert_eq!(
            p,
            vec![json!({"totp":{"code":"123456","login":{
                "ldap":true,"username":"alice","ldapPass":"pw","ldapOptions":{}}}})]
        );
        assert!(no_local_password(
            "the server refused the login: User has no password set [403]"
        ));
        assert!(!no_local_password("Incorrect password"));
        assert!(token_refused("x").starts_with("log in again"));
    }
}
