//! Where a second-factor code comes from, and the rules that keep code attempts from storming
//! the server: `totp_command` (run without a shell) or the user (`otrctl login`, the
//! `SubmitLoginCode` RPC); at most [`MAX_ATTEMPTS_PER_MINUTE`] attempts a minute; a code the
//! server refused is never sent again (only a hash of it is kept, to recognise it).

use super::auth::{CodeError, SecondFactor, TwoFactorMethod};
use super::connection::{Outcome, Task};
use crate::engine::ConnectionState;
use crate::secure::SecretString;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Code attempts allowed in any minute (the server locks accounts after a few wrong codes).
pub(super) const MAX_ATTEMPTS_PER_MINUTE: usize = 5;
/// Refused codes from `totp_command` before otrd stops running it and asks the user.
const MAX_COMMAND_REFUSALS: u32 = 3;
/// TOTP time step (RFC 6238 default, what Rocket.Chat uses).
const TOTP_STEP: Duration = Duration::from_secs(30);

/// A code handed in by a front-end, with where to say what became of it.
pub(super) struct Submission {
    pub code: SecretString,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// The code for the next attempt, and the front-end waiting for its outcome (if it came from one).
pub(super) struct Code {
    pub code: SecretString,
    pub reply: Option<oneshot::Sender<Result<String, String>>>,
}

impl Code {
    /// Tells the front-end that gave this code what happened.
    pub fn answer(&mut self, outcome: Result<String, String>) {
        if let Some(r) = self.reply.take() {
            let _ = r.send(outcome);
        }
    }
}

/// Remembers refused codes (hashed) and paces attempts.
#[derive(Default)]
pub(super) struct CodeGate {
    refused: VecDeque<[u8; 32]>,
    attempts: VecDeque<Instant>,
    command_refusals: u32,
}

fn hash(code: &SecretString) -> [u8; 32] {
    Sha256::digest(code.expose().trim().as_bytes()).into()
}

impl CodeGate {
    pub fn was_refused(&self, code: &SecretString) -> bool {
        self.refused.contains(&hash(code))
    }

    pub fn refuse(&mut self, code: &SecretString) {
        if self.refused.len() >= 64 {
            self.refused.pop_front();
        }
        self.refused.push_back(hash(code));
    }

    /// Takes an attempt slot now, or says how long until one is free.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.attempts.pop_front();
        }
        if self.attempts.len() >= MAX_ATTEMPTS_PER_MINUTE {
            let oldest = self.attempts.front().copied().unwrap_or(now);
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(oldest)));
        }
        self.attempts.push_back(now);
        Ok(())
    }
}

/// What the connection state says while a code is wanted.
pub(super) fn prompt(sf: &SecondFactor, why: Option<&str>) -> String {
    let m = sf.method.as_str();
    let mut s = format!("two-factor code required ({m})");
    if let Some(why) = why {
        s.push_str(&format!(": {why}"));
    }
    if sf.method == TwoFactorMethod::Email {
        s.push_str(if sf.code_sent {
            "; the server sent a code to your e-mail address"
        } else {
            "; use the code the server sent to your e-mail address"
        });
    }
    s.push_str("; enter it with `otrctl login`");
    s
}

/// Why the last code was refused, for people.
pub(super) fn refusal(sf: &SecondFactor) -> String {
    match sf.kind {
        CodeError::Required => format!("the server asks for a code ({})", sf.said),
        CodeError::Invalid => format!(
            "the server refused the code ({}); it will not be sent again",
            sf.said
        ),
        CodeError::MaxAttempts => format!(
            "too many wrong codes ({}); the server asks for a new one",
            sf.said
        ),
    }
}

impl Task {
    /// The code for the next attempt after `sf`: from `totp_command` while it keeps producing
    /// codes the server takes, else from the user. Waits as the gate says.
    pub(super) async fn next_code(&mut self, sf: &SecondFactor) -> Result<Code, Outcome> {
        let why = (sf.kind != CodeError::Required).then(|| refusal(sf));
        if sf.method == TwoFactorMethod::Totp && self.gate.command_refusals < MAX_COMMAND_REFUSALS {
            if let Some(cmd) = self.cfg.totp_command.clone() {
                if sf.kind != CodeError::Required {
                    self.gate.command_refusals += 1;
                }
                if self.gate.command_refusals < MAX_COMMAND_REFUSALS {
                    return self.code_from_command(&cmd).await;
                }
            }
        }
        let why = match (why, self.cfg.totp_command.is_some()) {
            (Some(w), true) if sf.method == TwoFactorMethod::Totp => Some(format!(
                "{w}; totp_command's codes were refused {MAX_COMMAND_REFUSALS} times (check its \
                 secret and the clock)"
            )),
            (w, _) => w,
        };
        self.code_from_user(sf, why.as_deref()).await
    }

    /// Runs `totp_command` until it prints a code not refused before (the next time step),
    /// then waits for an attempt slot.
    async fn code_from_command(
        &mut self,
        cmd: &crate::config::SecretCommand,
    ) -> Result<Code, Outcome> {
        // A refused code stays the command's output for the rest of its 30 s step.
        for _ in 0..3 {
            let code = cmd.run().await.map_err(|e| {
                Outcome::AuthFailed(format!("account.totp_command did not yield a code: {e}"))
            })?;
            if !self.gate.was_refused(&code) {
                self.wait_for_slot().await;
                return Ok(Code { code, reply: None });
            }
            tracing::info!("totp_command printed a code already refused; waiting for the next");
            tokio::time::sleep(until_next_step()).await;
        }
        Err(Outcome::AuthFailed(
            "account.totp_command keeps printing a code the server refused".into(),
        ))
    }

    /// Waits until the gate admits an attempt (and takes it).
    pub(super) async fn wait_for_slot(&mut self) {
        while let Err(wait) = self.gate.admit(Instant::now()) {
            tracing::info!(
                wait_s = wait.as_secs(),
                "two-factor attempts paced; waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Says a code is needed (state, event) and waits for one from a front-end. Codes refused
    /// before, or beyond the pace, are answered at once and not tried.
    async fn code_from_user(
        &mut self,
        sf: &SecondFactor,
        why: Option<&str>,
    ) -> Result<Code, Outcome> {
        let detail = prompt(sf, why);
        tracing::info!(method = sf.method.as_str(), "two-factor code required");
        self.state
            .send_modify(|s| s.code_wanted = Some((sf.method, detail.clone())));
        self.emit(super::ClientEvent::Connection {
            state: ConnectionState::TwoFactorRequired,
            detail,
        })
        .await;
        loop {
            let Some(sub) = self.codes.recv().await else {
                return Err(Outcome::Closed);
            };
            if sub.code.expose().trim().is_empty() || sub.code.len() > 64 {
                let _ = sub.reply.send(Err("that is not a code".into()));
                continue;
            }
            if self.gate.was_refused(&sub.code) {
                let _ = sub.reply.send(Err(
                    "the server already refused this code; enter the next one".into(),
                ));
                continue;
            }
            if let Err(wait) = self.gate.admit(Instant::now()) {
                let _ = sub.reply.send(Err(format!(
                    "too many attempts; try again in {} s",
                    wait.as_secs().max(1)
                )));
                continue;
            }
            self.state.send_modify(|s| s.code_wanted = None);
            self.emit(super::ClientEvent::Connection {
                state: ConnectionState::Connecting,
                detail: format!("logging in with the {} code", sf.method.as_str()),
            })
            .await;
            return Ok(Code {
                code: sub.code,
                reply: Some(sub.reply),
            });
        }
    }
}

fn until_next_step() -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_secs(now.as_secs() % TOTP_STEP.as_secs());
    TOTP_STEP.saturating_sub(into) + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_paces_and_remembers() {
        let mut g = CodeGate::default();
        let t0 = Instant::now();
        for _ in 0..MAX_ATTEMPTS_PER_MINUTE {
            assert!(g.admit(t0).is_ok());
        }
        let wait = g.admit(t0 + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        assert!(g.admit(t0 + Duration::from_secs(60)).is_ok());
        let c = SecretString::from("123456");
        assert!(!g.was_refused(&c));
        g.refuse(&c);
        assert!(g.was_refused(&SecretString::from(" 123456\n")));
        assert!(!g.was_refused(&SecretString::from("654321")));
    }

    #[test]
    fn prompts_say_the_method_and_what_to_do() {
        let sf = SecondFactor {
            kind: CodeError::Required,
            method: TwoFactorMethod::Email,
            code_sent: true,
            said: "totp-required: TOTP Required".into(),
        };
        let p = prompt(&sf, None);
        assert!(p.starts_with("two-factor code required (email)"), "{p}");
        assert!(p.contains("sent a code to your e-mail"), "{p}");
        assert!(p.contains("otrctl login"), "{p}");
        let sf = SecondFactor {
            kind: CodeError::Invalid,
            method: TwoFactorMethod::Totp,
            ..sf
        };
        let p = prompt(&sf, Some(&refusal(&sf)));
        assert!(p.starts_with("two-factor code required (totp): the server refused the code"));
        assert!(until_next_step() <= TOTP_STEP + Duration::from_secs(1));
    }
}
