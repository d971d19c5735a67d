//! The command line. Completions and the man page are generated from this same definition.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Control otrd: off-the-record direct messages on Rocket.Chat.
///
/// USER is a Rocket.Chat username, or `room:<id>` for a direct-message room id.
/// Exit status: 0 done; 1 failed; 2 otrd is not running; 3 otrd does not support this yet;
/// 64 bad command line.
#[derive(Debug, Parser)]
#[command(name = "otrctl", version, propagate_version = true)]
pub struct Cli {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/otrd/otrd.sock, else
    /// $TMPDIR/otrd-$UID/otrd.sock].
    #[arg(long, global = true, value_name = "PATH", env = "OTRD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print one JSON object per line instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of the contract, plus completions and man.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Daemon, account, server connection and memory-lock state.
    Status,
    /// Direct-message rooms with the peer's presence and session state.
    Rooms,
    /// Every session the daemon knows.
    Sessions,
    /// Start an OTR session (native when the peer runs otrd, else the stock scheme).
    Start {
        /// Who to talk to.
        user: String,
        /// Force the stock Rocket.Chat scheme.
        #[arg(long, conflicts_with = "native")]
        legacy: bool,
        /// Native (otrd to otrd) or nothing.
        #[arg(long)]
        native: bool,
    },
    /// Accept USER's pending invitation.
    Accept {
        /// Who invited you.
        user: String,
        /// Accept only the invitation with this event seq (from `otrctl watch` or `sessions`):
        /// if another offer replaced it, nothing is accepted and the error names the new one.
        #[arg(long)]
        seq: Option<u64>,
    },
    /// Decline USER's pending invitation.
    Decline {
        /// Who invited you.
        user: String,
    },
    /// Replace the keys of the session with USER without ending it.
    Refresh {
        /// The peer.
        user: String,
    },
    /// End the session with USER, or every session with --all.
    End {
        /// The peer.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        user: Option<String>,
        /// End every session.
        #[arg(long)]
        all: bool,
    },
    /// The screen locked (for lock-screen hooks): end every session at once, and start or accept
    /// none — auto-accept and `require_otr` sends included — until `otrctl unlock`.
    Lock,
    /// The screen unlocked: sessions may start again (logind's unlock does the same).
    Unlock,
    /// Send TEXT to USER over the established session; `-` reads the text from stdin. For a
    /// `require_otr` contact without one, OTR is started and the command waits for it.
    Send {
        /// The peer.
        user: String,
        /// The message, or `-` to read it from stdin (keeps it off the command line).
        text: String,
    },
    /// Print events as they happen, until interrupted.
    Watch {
        /// First replay the scrollback of current sessions.
        #[arg(long)]
        scrollback: bool,
    },
    /// Show your identity fingerprint, and USER's with its trust and SAS.
    Fingerprint {
        /// The peer.
        user: Option<String>,
    },
    /// Verify USER's identity key: give the FINGERPRINT you compared with USER over another
    /// channel, or the SAS you both read (--sas, all five groups). Without either, nothing is
    /// verified; `accept-key` lets a new key in without verifying it.
    Trust {
        /// The peer.
        user: String,
        /// The fingerprint you compared over another channel (`otrctl fingerprint USER`).
        fingerprint: Option<String>,
        /// The short authentication string of the live session, all five groups, after you
        /// compared it with USER (e.g. by phone).
        #[arg(long, value_name = "SAS", conflicts_with = "fingerprint")]
        sas: Option<String>,
    },
    /// Accept USER's new identity key without verifying it: a session held for it may send
    /// again, and trust stays unverified (compare and `trust` later to verify).
    AcceptKey {
        /// The peer.
        user: String,
        /// Accept only this fingerprint (refused if the session has another key).
        fingerprint: Option<String>,
    },
    /// Supply the two-factor code the daemon's login waits for (`otrctl status` says
    /// "two-factor code required (totp|email)"). Without CODE (or with `-`) the code is read from
    /// stdin, which keeps it off the command line; a code is single-use either way.
    Login {
        /// The code from your authenticator app or e-mail; omit to be asked.
        code: Option<String>,
    },
    /// Bridge JSON lines on stdin/stdout to the API, for editors and scripts.
    ///
    /// Each input line `{"id":1,"method":"StartSession","params":{"peer":{"username":"bob"}}}`
    /// gets one line `{"id":1,"result":{…}}` or `{"id":1,"error":{"code":"…","message":"…"}}`;
    /// `{"id":2,"method":"WatchEvents"}` adds `{"event":{…}}` lines. Field names follow the
    /// proto3 JSON mapping. Ends at end of input.
    Rpc,
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// A USER argument as the API's peer reference: `room:<id>` names a room, anything else a user.
pub fn peer_ref(user: &str) -> otrd_proto::v1::PeerRef {
    use otrd_proto::v1::peer_ref::Target;
    let target = match user.strip_prefix("room:") {
        Some(room) => Target::RoomId(room.to_owned()),
        None => Target::Username(user.trim_start_matches('@').to_owned()),
    };
    otrd_proto::v1::PeerRef {
        target: Some(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use otrd_proto::v1::peer_ref::Target;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn users_and_rooms() {
        assert_eq!(peer_ref("bob").target, Some(Target::Username("bob".into())));
        assert_eq!(
            peer_ref("@bob").target,
            Some(Target::Username("bob".into()))
        );
        assert_eq!(
            peer_ref("room:abc").target,
            Some(Target::RoomId("abc".into()))
        );
    }

    #[test]
    fn end_needs_a_user_or_all() {
        assert!(Cli::try_parse_from(["otrctl", "end"]).is_err());
        assert!(Cli::try_parse_from(["otrctl", "end", "bob", "--all"]).is_err());
        assert!(Cli::try_parse_from(["otrctl", "end", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["otrctl", "start", "bob", "--legacy", "--native"]).is_err());
    }
}
