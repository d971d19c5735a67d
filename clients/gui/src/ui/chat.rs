//! The central panel: the open conversation — header with the status indicator and the
//! session buttons, the lines with delivered marks, and the send box.

use super::badge;
use crate::model::{Delivery, PeerView, ViewModel};
use crate::worker::Request;
use eframe::egui::{self, Color32, RichText};
use otrd_proto::v1::{Direction, Trust};
use zeroize::{Zeroize, Zeroizing};

/// Draws the selected peer's conversation. `draft` is the send box; `online` is false while the
/// daemon is unreachable (every button is then disabled). Requests go to `out`.
pub fn show(
    ui: &mut egui::Ui,
    model: &ViewModel,
    draft: &mut String,
    online: bool,
    out: &mut Vec<Request>,
) {
    let Some(peer) = model.selected() else {
        ui.centered_and_justified(|ui| ui.label("Pick a peer on the left"));
        return;
    };
    header(ui, peer, online, out);
    ui.separator();
    egui::Panel::bottom("send_box").show(ui, |ui| send_box(ui, peer, draft, online, out));
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .show(ui, |ui| lines(ui, model, peer));
}

fn header(ui: &mut egui::Ui, peer: &PeerView, online: bool, out: &mut Vec<Request>) {
    ui.horizontal(|ui| {
        ui.heading(&peer.name);
        badge::presence_dot(ui, peer.presence);
        ui.label(badge::presence_name(peer.presence));
        ui.add_space(12.0);
        badge::privacy_pill(ui, peer.privacy());
    });
    ui.horizontal(|ui| {
        let mut facts = vec![format!("session {}", badge::state_name(peer.state))];
        let mode = badge::mode_name(peer.mode);
        if !mode.is_empty() {
            facts.push(mode.to_owned());
        }
        if peer.trust != Trust::Unspecified {
            facts.push(format!("identity {}", badge::trust_name(peer.trust)));
        }
        if !peer.detail.is_empty() {
            facts.push(peer.detail.clone());
        }
        ui.label(RichText::new(facts.join(" · ")).weak());
    });
    if !peer.warning.is_empty() {
        ui.label(
            RichText::new(format!("⚠ {}", peer.warning))
                .color(badge::DANGER)
                .strong(),
        );
    }
    if let Some(alarm) = &peer.alarm {
        ui.label(
            RichText::new(format!("⚠ {alarm}"))
                .color(badge::DANGER)
                .strong(),
        );
    }
    ui.horizontal(|ui| {
        let name = peer.name.clone();
        if ui
            .add_enabled(online && peer.can_start(), egui::Button::new("Start"))
            .clicked()
        {
            out.push(Request::Start(name.clone()));
        }
        if ui
            .add_enabled(online && peer.can_send(), egui::Button::new("Refresh"))
            .clicked()
        {
            out.push(Request::Refresh(name.clone()));
        }
        if ui
            .add_enabled(online && peer.can_end(), egui::Button::new("End"))
            .clicked()
        {
            out.push(Request::End(name.clone()));
        }
        if ui
            .add_enabled(online, egui::Button::new("Verify…"))
            .clicked()
        {
            out.push(Request::Fingerprint(name));
        }
    });
}

fn lines(ui: &mut egui::Ui, model: &ViewModel, peer: &PeerView) {
    let chat = model.chat(&peer.name);
    if chat.is_empty() {
        ui.label(
            RichText::new("No messages in this session. Nothing is kept after it ends.")
                .italics()
                .weak(),
        );
    }
    for line in chat {
        ui.horizontal_wrapped(|ui| {
            let (who, colour) = match line.direction {
                Direction::Out => ("me", Color32::from_rgb(60, 110, 200)),
                _ => (peer.name.as_str(), Color32::from_rgb(160, 90, 170)),
            };
            ui.label(RichText::new(format!("{who}:")).color(colour).strong());
            ui.label(line.text.as_str());
            match &line.delivery {
                Delivery::Incoming => {}
                Delivery::Pending => {
                    ui.label(RichText::new("…").weak())
                        .on_hover_text("sent, not yet delivered");
                }
                Delivery::Delivered => {
                    ui.label(RichText::new("✔").color(Color32::from_rgb(30, 140, 60)))
                        .on_hover_text("delivered");
                }
                Delivery::Failed(why) => {
                    ui.label(RichText::new("✖ not delivered").color(badge::DANGER))
                        .on_hover_text(why);
                }
            }
        });
    }
}

fn send_box(
    ui: &mut egui::Ui,
    peer: &PeerView,
    draft: &mut String,
    online: bool,
    out: &mut Vec<Request>,
) {
    let enabled = online && peer.can_send();
    let hint = if enabled {
        "Message (sent only inside the private session)"
    } else {
        "Start a private session to send messages"
    };
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        let width = (ui.available_width() - 70.0).max(80.0);
        let edit = ui.add_enabled(
            enabled,
            egui::TextEdit::singleline(draft)
                .hint_text(hint)
                .desired_width(width),
        );
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let clicked = ui.add_enabled(enabled, egui::Button::new("Send")).clicked();
        if enabled && (entered || clicked) && !draft.trim().is_empty() {
            out.push(Request::Send {
                peer: peer.name.clone(),
                text: Zeroizing::new(draft.clone()),
            });
            draft.zeroize();
            edit.request_focus();
        }
    });
    ui.add_space(4.0);
}
