//! Colours and small widgets that carry meaning: the privacy indicator, presence dots, the link
//! to the daemon. Each privacy level has its own colour, icon and words, so it cannot be
//! mistaken at a glance.

use crate::model::{Link, Privacy};
use eframe::egui::{self, Color32, RichText};
use otrd_proto::v1::{ConnectionState, Mode, Presence, SessionState, Trust};

/// Plaintext: grey-red, open lock.
const PLAINTEXT: Color32 = Color32::from_rgb(150, 60, 60);
/// Private but unverified: amber.
const UNVERIFIED: Color32 = Color32::from_rgb(200, 130, 0);
/// Private and verified: green.
const VERIFIED: Color32 = Color32::from_rgb(30, 140, 60);
/// Ended: slate.
const ENDED: Color32 = Color32::from_rgb(70, 70, 90);
/// Errors and alarms.
pub const DANGER: Color32 = Color32::from_rgb(200, 40, 40);

/// The indicator's colour and icon for a privacy level.
pub fn privacy_look(p: Privacy) -> (Color32, &'static str) {
    match p {
        Privacy::Plaintext => (PLAINTEXT, "🔓"),
        Privacy::PrivateUnverified => (UNVERIFIED, "🔒"),
        Privacy::PrivateVerified => (VERIFIED, "🔒✔"),
        Privacy::Ended => (ENDED, "⏹"),
    }
}

/// The big status indicator: a filled pill with icon and words.
pub fn privacy_pill(ui: &mut egui::Ui, p: Privacy) {
    let (fill, icon) = privacy_look(p);
    egui::Frame::new()
        .fill(fill)
        .corner_radius(10.0)
        .inner_margin(egui::Margin::symmetric(10, 4))
        .show(ui, |ui| {
            ui.label(
                RichText::new(format!("{icon} {}", p.label()))
                    .color(Color32::WHITE)
                    .strong(),
            );
        });
}

/// A small icon for the peers list.
pub fn privacy_icon(p: Privacy) -> RichText {
    let (colour, icon) = privacy_look(p);
    RichText::new(icon).color(colour)
}

/// A filled dot (painted: no font is needed for it).
pub fn dot(ui: &mut egui::Ui, colour: Color32) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.5, colour);
    response
}

/// A presence dot, with the presence in words on hover.
pub fn presence_dot(ui: &mut egui::Ui, p: Presence) -> egui::Response {
    let colour = match p {
        Presence::Online => Color32::from_rgb(40, 180, 70),
        Presence::Away => Color32::from_rgb(220, 170, 0),
        Presence::Busy => DANGER,
        Presence::Offline | Presence::Unknown => Color32::GRAY,
    };
    dot(ui, colour).on_hover_text(presence_name(p))
}

/// Presence in words.
pub fn presence_name(p: Presence) -> &'static str {
    match p {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Busy => "busy",
        Presence::Offline => "offline",
        Presence::Unknown => "presence unknown",
    }
}

/// Session state in the words `otrctl` uses.
pub fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Unspecified | SessionState::NotStarted => "not started",
        SessionState::Establishing => "establishing",
        SessionState::Requested => "invited you",
        SessionState::Established => "established",
        SessionState::Declined => "declined",
        SessionState::Timeout => "timed out",
        SessionState::Ended => "ended",
        SessionState::Error => "error",
    }
}

/// Scheme in words.
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Native => "native",
        Mode::Legacy => "legacy (stock client)",
        Mode::Unspecified => "",
    }
}

/// Trust in words.
pub fn trust_name(t: Trust) -> &'static str {
    match t {
        Trust::Verified => "verified",
        Trust::Unverified => "not verified",
        Trust::Changed => "IDENTITY CHANGED",
        Trust::Unknown | Trust::Unspecified => "unknown",
    }
}

/// The link to the daemon (and the daemon's to the server), for the top bar.
pub fn link_label(ui: &mut egui::Ui, link: &Link, server: ConnectionState) {
    let (colour, words) = match link {
        Link::Connecting => (UNVERIFIED, "connecting to otrd…"),
        Link::Disconnected { .. } => (DANGER, "otrd not running"),
        Link::Connected => match server {
            ConnectionState::Connected => (VERIFIED, "connected"),
            ConnectionState::AuthFailed => (DANGER, "server refused login"),
            ConnectionState::TwoFactorRequired => (UNVERIFIED, "two-factor code required"),
            ConnectionState::Connecting | ConnectionState::Reconnecting => {
                (UNVERIFIED, "otrd is reaching the server…")
            }
            _ => (DANGER, "server disconnected"),
        },
    };
    dot(ui, colour);
    ui.label(RichText::new(words).color(colour));
}
