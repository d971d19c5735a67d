//! The left panel: every direct-message peer with presence, session state and privacy.

use super::badge;
use crate::model::ViewModel;
use eframe::egui::{self, RichText};

/// Draws the list; a click opens that peer's conversation.
pub fn show(ui: &mut egui::Ui, model: &mut ViewModel) {
    ui.heading("Peers");
    ui.separator();
    let selected = model.selected().map(|p| p.name.clone());
    let mut clicked = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        if model.peers().next().is_none() {
            ui.label(RichText::new("No direct-message rooms yet").italics());
        }
        for peer in model.peers() {
            ui.horizontal(|ui| {
                badge::presence_dot(ui, peer.presence);
                let mut text = peer.name.clone();
                if peer.unread > 0 {
                    text.push_str(&format!(" ({})", peer.unread));
                }
                let is_selected = selected.as_deref() == Some(peer.name.as_str());
                if ui
                    .selectable_label(is_selected, RichText::new(text).strong())
                    .clicked()
                {
                    clicked = Some(peer.name.clone());
                }
                ui.label(badge::privacy_icon(peer.privacy()))
                    .on_hover_text(peer.privacy().label());
            });
            ui.label(RichText::new(badge::state_name(peer.state)).small().weak());
            ui.add_space(4.0);
        }
    });
    if let Some(name) = clicked {
        model.select(&name);
    }
}
