//! The window: drains the worker's updates into the view model each frame, draws it, and hands
//! the user's clicks to the worker. Nothing here waits on the daemon.

mod badge;
mod chat;
mod dialogs;
mod peers;

use crate::capture::{self, Script, Step};
use crate::model::{Link, Update, ViewModel};
use crate::worker::{Request, WorkerHandle};
use eframe::egui::{self, RichText};
use tokio::sync::mpsc::UnboundedReceiver;
use zeroize::Zeroize;

/// The eframe application.
pub struct GuiApp {
    model: ViewModel,
    worker: WorkerHandle,
    updates: UnboundedReceiver<Update>,
    /// The send box. Wiped after each send and when the window closes.
    draft: String,
    /// The two-factor code field. Wiped when the code is sent and when the window closes.
    login_code: String,
    script: Option<Script>,
}

impl GuiApp {
    /// A window fed by `updates`, sending requests to `worker`; `script` captures a screenshot.
    pub fn new(
        worker: WorkerHandle,
        updates: UnboundedReceiver<Update>,
        script: Option<Script>,
    ) -> Self {
        Self {
            model: ViewModel::new(),
            worker,
            updates,
            draft: String::new(),
            login_code: String::new(),
            script,
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui, out: &mut Vec<Request>) {
        let online = self.model.link() == Link::Connected;
        ui.horizontal(|ui| {
            ui.label(RichText::new("otrd").strong().size(18.0));
            let status = self.model.status();
            if !status.account.is_empty() {
                ui.label(format!("{} on {}", status.account, status.server_url));
            }
            badge::link_label(ui, &self.model.link(), self.model.server_link());
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let lock =
                    egui::Button::new(RichText::new("🔒 Lock all").color(egui::Color32::WHITE))
                        .fill(badge::DANGER);
                if ui
                    .add_enabled(online, lock)
                    .on_hover_text("End every session now")
                    .clicked()
                {
                    out.push(Request::EndAll);
                }
            });
        });
        if let Link::Disconnected { reason } = self.model.link() {
            egui::Frame::new()
                .fill(badge::DANGER)
                .inner_margin(6.0)
                .show(ui, |ui| {
                    ui.label(
                        RichText::new(format!("Not connected to otrd — retrying. ({reason})"))
                            .color(egui::Color32::WHITE)
                            .strong(),
                    );
                });
        }
    }

    fn notices(&mut self, ui: &mut egui::Ui) {
        let mut clear = false;
        for n in self.model.notices() {
            let text = RichText::new(&n.text);
            ui.label(if n.error {
                text.color(badge::DANGER)
            } else {
                text
            });
        }
        if self.model.notices().next().is_some() && ui.small_button("Dismiss").clicked() {
            clear = true;
        }
        if clear {
            self.model.clear_notices();
        }
    }

    fn run_script(&mut self, ctx: &egui::Context, out: &mut Vec<Request>) {
        let Some(script) = self.script.as_mut() else {
            return;
        };
        match script.step(&mut self.model) {
            Step::Wait => {}
            Step::Ask(r) => out.push(r),
            Step::Shoot => {
                let (path, outcome, closer) =
                    (script.path.clone(), script.outcome.clone(), ctx.clone());
                ctx.request_screenshot(move |image| {
                    let result = capture::save_png(&path, &image).map_err(|e| e.to_string());
                    let _ = outcome.set(result);
                    closer.send_viewport_cmd(egui::ViewportCommand::Close);
                    closer.request_repaint();
                });
            }
        }
        // Keep frames coming until the shot is taken.
        ctx.request_repaint_after(std::time::Duration::from_millis(50));
    }
}

impl eframe::App for GuiApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        while let Ok(update) = self.updates.try_recv() {
            self.model.apply(update);
        }
        let ctx = ui.ctx().clone();
        let online = self.model.link() == Link::Connected;
        let mut out = Vec::new();
        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui, &mut out));
        if self.model.notices().next().is_some() {
            egui::Panel::bottom("notices").show(ui, |ui| self.notices(ui));
        }
        egui::Panel::left("peers")
            .resizable(true)
            .default_size(200.0)
            .show(ui, |ui| peers::show(ui, &mut self.model));
        egui::CentralPanel::default().show(ui, |ui| {
            chat::show(ui, &self.model, &mut self.draft, online, &mut out);
        });
        dialogs::invitations(&ctx, &mut self.model, online, &mut out);
        dialogs::verification(&ctx, &mut self.model, online, &mut out);
        dialogs::two_factor(&ctx, &self.model, online, &mut self.login_code, &mut out);
        self.run_script(&ctx, &mut out);
        for request in out {
            self.worker.request(request);
        }
    }
}

impl Drop for GuiApp {
    fn drop(&mut self) {
        self.draft.zeroize();
        self.login_code.zeroize();
    }
}
