//! Windows over the main view: the invitation prompt (Accept / Decline) and the verification
//! dialog (both fingerprints, the SAS; verify by SAS or fingerprint, or accept a new key
//! unverified).

use super::badge;
use crate::model::{Verification, ViewModel};
use crate::worker::Request;
use eframe::egui::{self, Color32, RichText};
use otrd_proto::v1::Trust;

/// One prompt per pending invitation. Answering hides it at once.
pub fn invitations(
    ctx: &egui::Context,
    model: &mut ViewModel,
    online: bool,
    out: &mut Vec<Request>,
) {
    let mut answered = Vec::new();
    for (i, inv) in model.invitations().enumerate() {
        egui::Window::new(format!("Invitation from {}", inv.peer))
            .id(egui::Id::unique(("invitation", &inv.peer)))
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_TOP, [0.0, 150.0 + 100.0 * i as f32])
            .show(ctx, |ui| {
                let scheme = match badge::mode_name(inv.mode) {
                    "" => String::new(),
                    m => format!(" ({m})"),
                };
                ui.label(
                    RichText::new(format!(
                        "{} wants to talk off the record{scheme}.",
                        inv.peer
                    ))
                    .strong(),
                );
                ui.horizontal(|ui| {
                    let accept = egui::Button::new(RichText::new("Accept").color(Color32::WHITE))
                        .fill(Color32::from_rgb(30, 140, 60));
                    if ui.add_enabled(online, accept).clicked() {
                        out.push(Request::Accept(inv.peer.clone(), inv.seq));
                        answered.push(inv.peer.clone());
                    }
                    if ui
                        .add_enabled(online, egui::Button::new("Decline"))
                        .clicked()
                    {
                        out.push(Request::Decline(inv.peer.clone()));
                        answered.push(inv.peer.clone());
                    }
                });
            });
    }
    for peer in answered {
        model.answered(&peer);
    }
}

/// The two-factor prompt, while the daemon's login waits for a code: what the server asks for
/// (totp or e-mail, and why), a hidden field, Log in. The field is wiped once the code is sent.
pub fn two_factor(
    ctx: &egui::Context,
    model: &ViewModel,
    online: bool,
    code: &mut String,
    out: &mut Vec<Request>,
) {
    if model.server_link() != otrd_proto::v1::ConnectionState::TwoFactorRequired {
        return;
    }
    egui::Window::new("Two-factor code")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_TOP, [0.0, 100.0])
        .show(ctx, |ui| {
            ui.label(&model.status().connection_detail);
            let field = ui.add(
                egui::TextEdit::singleline(code)
                    .password(true)
                    .hint_text("code"),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let login = ui.add_enabled(
                online && !code.trim().is_empty(),
                egui::Button::new("Log in"),
            );
            if (login.clicked() || enter) && online && !code.trim().is_empty() {
                let sent = zeroize::Zeroizing::new(code.trim().to_owned());
                zeroize::Zeroize::zeroize(code);
                out.push(Request::LoginCode(sent));
            }
        });
}

/// The verification dialog, when open.
pub fn verification(
    ctx: &egui::Context,
    model: &mut ViewModel,
    online: bool,
    out: &mut Vec<Request>,
) {
    let Some(v) = model.verification() else {
        return;
    };
    let mut close = false;
    egui::Window::new(format!("Verify {}", v.peer))
        .id(egui::Id::unique("verification"))
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ctx, |ui| {
            body(ui, v);
            ui.separator();
            // Verifying says what was compared; accepting a new key says nothing was.
            let can_decide = online && v.unavailable.is_none() && !v.peer_fingerprint.is_empty();
            ui.horizontal(|ui| {
                let green = |text: &str| {
                    egui::Button::new(RichText::new(text).color(Color32::WHITE))
                        .fill(Color32::from_rgb(30, 140, 60))
                };
                if ui
                    .add_enabled(
                        can_decide && !v.sas.is_empty() && v.trust != Trust::Verified,
                        green("All five SAS groups match"),
                    )
                    .on_hover_text(
                        "You read the SAS with your peer, by voice, and every group matched",
                    )
                    .clicked()
                {
                    out.push(Request::ConfirmSas {
                        peer: v.peer.clone(),
                        sas: v.sas.clone(),
                    });
                }
                if ui
                    .add_enabled(
                        can_decide && !v.sas.is_empty() && v.trust != Trust::Verified,
                        green("Fingerprints match"),
                    )
                    .on_hover_text(
                        "You compared the whole fingerprint with your peer over another channel",
                    )
                    .clicked()
                {
                    out.push(Request::Trust {
                        peer: v.peer.clone(),
                        fingerprint: v.peer_fingerprint.clone(),
                    });
                }
                if v.trust == Trust::Changed
                    && ui
                        .add_enabled(can_decide, egui::Button::new("Accept key (unverified)"))
                        .on_hover_text(
                            "Let this new key send without verifying it (a new device of your \
                             peer's); it stays unverified",
                        )
                        .clicked()
                {
                    out.push(Request::AcceptKey {
                        peer: v.peer.clone(),
                        fingerprint: v.peer_fingerprint.clone(),
                    });
                }
                if ui.button("Close").clicked() {
                    close = true;
                }
            });
        });
    if close {
        model.close_verification();
    }
}

fn body(ui: &mut egui::Ui, v: &Verification) {
    if let Some(reason) = &v.unavailable {
        ui.label(RichText::new("The daemon cannot show fingerprints for this peer:").strong());
        ui.label(RichText::new(reason).color(badge::DANGER));
        ui.label("Sessions with the stock client's scheme cannot be verified; they stay amber.");
        return;
    }
    ui.label(
        "Compare these with your peer over another channel (in person, or by voice): read the \
         SAS aloud and compare all five groups, or the whole fingerprint.",
    );
    ui.add_space(6.0);
    egui::Grid::new("fingerprints")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            ui.label("Your fingerprint");
            ui.label(RichText::new(&v.own_fingerprint).monospace());
            ui.end_row();
            ui.label(format!("{}'s fingerprint", v.peer));
            if v.peer_fingerprint.is_empty() {
                ui.label(RichText::new("not seen yet (start a native session)").italics());
            } else {
                ui.label(RichText::new(&v.peer_fingerprint).monospace());
            }
            ui.end_row();
            ui.label("Short authentication string");
            if v.sas.is_empty() {
                ui.label(RichText::new("only during a native session").italics());
            } else {
                ui.label(RichText::new(&v.sas).monospace().size(22.0).strong());
            }
            ui.end_row();
            ui.label("Trust");
            let colour = match v.trust {
                Trust::Verified => Color32::from_rgb(30, 140, 60),
                Trust::Changed => badge::DANGER,
                _ => Color32::from_rgb(200, 130, 0),
            };
            ui.label(
                RichText::new(badge::trust_name(v.trust))
                    .color(colour)
                    .strong(),
            );
            ui.end_row();
        });
    if !v.previous_fingerprint.is_empty() {
        ui.label(
            RichText::new(format!("Previously remembered: {}", v.previous_fingerprint))
                .color(badge::DANGER),
        );
    }
}
