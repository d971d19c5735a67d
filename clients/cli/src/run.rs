//! Carries out one command: connect, call the daemon, print the answer.

use crate::cli::{peer_ref, Cli, Command};
use crate::connect;
use crate::error::CliError;
use crate::events;
use crate::render;
use clap::CommandFactory;
use otrd_proto::v1 as pb;
use serde_json::{json, Value};
use std::io::{Read, Write};
use tokio_stream::StreamExt;
use zeroize::Zeroizing;

/// Where answers go: text for people, or one JSON object per line.
struct Out {
    json: bool,
    stdout: std::io::Stdout,
}

impl Out {
    /// Prints `json` with `--json`, else `text`.
    fn print(&mut self, json: Value, text: impl FnOnce() -> String) -> Result<(), CliError> {
        let mut lock = self.stdout.lock();
        if self.json {
            writeln!(lock, "{json}")?;
        } else {
            writeln!(lock, "{}", text())?;
        }
        lock.flush()?;
        Ok(())
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let mut out = Out {
        json: cli.json,
        stdout: std::io::stdout(),
    };
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "otrctl",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    // Read stdin before connecting, so a slow typist does not hold a connection open.
    let stdin_text = match &cli.command {
        Command::Send { text, .. } if text == "-" => Some(read_stdin()?),
        _ => None,
    };
    let path = connect::socket_path(cli.socket.as_deref())?;
    if let Command::Rpc = cli.command {
        return crate::rpc::run(&path).await;
    }
    let mut client = connect::connect(&path).await?;

    match cli.command {
        Command::Login { code } => {
            let code = match code.as_deref() {
                None | Some("-") => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        eprint!("two-factor code: ");
                    }
                    let mut line = Zeroizing::new(String::new());
                    std::io::stdin().read_line(&mut line)?;
                    Zeroizing::new(line.trim().to_owned())
                }
                Some(c) => Zeroizing::new(c.trim().to_owned()),
            };
            let req = pb::SubmitLoginCodeRequest {
                code: code.as_str().to_owned(),
            };
            let answer = client.submit_login_code(req).await?.into_inner();
            out.print(serde_json::json!({ "detail": answer.detail }), || {
                answer.detail.clone()
            })
        }
        Command::Status => {
            let s = client
                .get_status(pb::GetStatusRequest {})
                .await?
                .into_inner();
            out.print(render::status_json(&s), || render::status_text(&s))
        }
        Command::Rooms => {
            let rooms = client
                .list_rooms(pb::ListRoomsRequest {})
                .await?
                .into_inner()
                .rooms;
            if rooms.is_empty() && !out.json {
                return out.print(Value::Null, || "no direct-message rooms".into());
            }
            for r in &rooms {
                out.print(render::room_json(r), || render::room_text(r))?;
            }
            Ok(())
        }
        Command::Sessions => {
            let sessions = client
                .list_sessions(pb::ListSessionsRequest {})
                .await?
                .into_inner()
                .sessions;
            if sessions.is_empty() && !out.json {
                return out.print(Value::Null, || "no sessions".into());
            }
            for s in &sessions {
                out.print(render::session_json(s), || render::session_text(s))?;
            }
            Ok(())
        }
        Command::Start {
            user,
            legacy,
            native,
        } => {
            let scheme = match (legacy, native) {
                (true, _) => pb::SchemePreference::Legacy,
                (_, true) => pb::SchemePreference::Native,
                _ => pb::SchemePreference::Auto,
            };
            let req = pb::StartSessionRequest {
                peer: Some(peer_ref(&user)),
                scheme: scheme.into(),
            };
            let session = client.start_session(req).await?.into_inner().session;
            print_session(&mut out, session, |s| {
                format!(
                    "{}; `otrctl watch` shows when it is established",
                    render::session_text(s)
                )
            })
        }
        Command::Accept { user, seq } => {
            let request = pb::PeerRequest {
                invitation_seq: seq.unwrap_or(0),
                ..peer_request(&user)
            };
            let s = client.accept_session(request).await?.into_inner().session;
            print_session(&mut out, s, render::session_text)
        }
        Command::Decline { user } => {
            let s = client
                .decline_session(peer_request(&user))
                .await?
                .into_inner()
                .session;
            print_session(&mut out, s, render::session_text)
        }
        Command::Refresh { user } => {
            let s = client
                .refresh_session(peer_request(&user))
                .await?
                .into_inner()
                .session;
            print_session(&mut out, s, render::session_text)
        }
        Command::End {
            user: Some(user),
            all: false,
        } => {
            let s = client
                .end_session(peer_request(&user))
                .await?
                .into_inner()
                .session;
            print_session(&mut out, s, render::session_text)
        }
        Command::End { .. } | Command::Lock => {
            let r = if matches!(cli.command, Command::Lock) {
                client.lock(pb::LockRequest {}).await?
            } else {
                client
                    .end_all_sessions(pb::EndAllSessionsRequest {})
                    .await?
            }
            .into_inner();
            out.print(
                json!({"ended": r.ended, "elapsed_us": r.elapsed_us}),
                || format!("ended {} session(s) in {} µs", r.ended, r.elapsed_us),
            )
        }
        Command::Unlock => {
            let r = client.unlock(pb::UnlockRequest {}).await?.into_inner();
            out.print(json!({"was_locked": r.was_locked}), || {
                if r.was_locked {
                    "unlocked: sessions may start again".to_owned()
                } else {
                    "was not locked".to_owned()
                }
            })
        }
        Command::Send { user, text } => {
            let text = match stdin_text {
                Some(t) => t,
                None => Zeroizing::new(text),
            };
            if text.trim().is_empty() {
                return Err(CliError::Usage("the message is empty".into()));
            }
            let req = pb::SendMessageRequest {
                peer: Some(peer_ref(&user)),
                text: text.as_str().to_owned(),
            };
            drop(text);
            let r = client.send_message(req).await?.into_inner();
            out.print(
                json!({"id": r.id, "room_id": r.room_id, "ts": r.ts_ms}),
                || {
                    format!(
                        "sent to {user} (id {}); `otrctl watch` reports delivery",
                        r.id
                    )
                },
            )
        }
        Command::Watch { scrollback } => {
            let req = pb::WatchEventsRequest {
                include_scrollback: scrollback,
            };
            let mut stream = client.watch_events(req).await?.into_inner();
            while let Some(event) = stream.next().await {
                let event = event?;
                if let (Some(j), Some(line)) = (events::to_json(&event), events::to_line(&event)) {
                    out.print(j, || line)?;
                }
            }
            Ok(())
        }
        Command::Fingerprint { user } => {
            let req = pb::GetFingerprintRequest {
                peer: user.as_deref().map(peer_ref),
            };
            let f = client.get_fingerprint(req).await?.into_inner();
            out.print(render::fingerprint_json(&f), || {
                render::fingerprint_text(&f)
            })
        }
        Command::Trust {
            user,
            fingerprint,
            sas,
        } => {
            let f = match sas {
                Some(sas) => {
                    let req = pb::ConfirmSasRequest {
                        peer: Some(peer_ref(&user)),
                        sas,
                    };
                    client.confirm_sas(req).await?.into_inner()
                }
                None => {
                    let req = pb::TrustPeerRequest {
                        peer: Some(peer_ref(&user)),
                        fingerprint: fingerprint.unwrap_or_default(),
                    };
                    client.trust_peer(req).await?.into_inner()
                }
            };
            out.print(render::fingerprint_json(&f), || {
                format!("{user} is now verified\n{}", render::fingerprint_text(&f))
            })
        }
        Command::AcceptKey { user, fingerprint } => {
            let req = pb::AcceptPeerKeyRequest {
                peer: Some(peer_ref(&user)),
                fingerprint: fingerprint.unwrap_or_default(),
            };
            let f = client.accept_peer_key(req).await?.into_inner();
            out.print(render::fingerprint_json(&f), || {
                format!(
                    "{user}'s key is accepted, NOT verified: sending works again; compare \
                     fingerprints or the SAS and run `otrctl trust {user} …` to verify\n{}",
                    render::fingerprint_text(&f)
                )
            })
        }
        Command::Completions { .. } | Command::Man | Command::Rpc => Ok(()),
    }
}

fn peer_request(user: &str) -> pb::PeerRequest {
    pb::PeerRequest {
        peer: Some(peer_ref(user)),
        invitation_seq: 0,
    }
}

fn print_session(
    out: &mut Out,
    session: Option<pb::Session>,
    text: impl FnOnce(&pb::Session) -> String,
) -> Result<(), CliError> {
    let session = session.unwrap_or_default();
    out.print(render::session_json(&session), || text(&session))
}

/// The message text from stdin, one trailing newline removed, kept in zeroizing memory.
fn read_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut text = Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut text)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}
