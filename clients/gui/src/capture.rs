//! Scripted screenshots, for the smoke test and the README: with `OTRD_GUI_SCREENSHOT=<path>`
//! the window waits until the chosen scene is on screen, saves a PNG of itself and closes.
//!
//! - `OTRD_GUI_SCENE` — `chat` (default: an established session with a delivered message and an
//!   answer), `verify` (the same, with the verification dialog open) or `invite` (an invitation
//!   prompt is showing);
//! - `OTRD_GUI_SELECT` — the peer whose conversation to open.

use crate::model::{Delivery, ViewModel};
use crate::worker::Request;
use eframe::egui::ColorImage;
use otrd_proto::v1::{Direction, SessionState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Frames drawn after the scene is ready and before the shot, so windows have their final size.
const SETTLE_FRAMES: u32 = 5;

/// Which view to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    /// An established conversation with a delivered message and a reply.
    Chat,
    /// The chat, with the verification dialog open.
    Verify,
    /// An invitation prompt.
    Invite,
}

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// `OTRD_GUI_SCENE` names no scene.
    #[error("unknown OTRD_GUI_SCENE {0:?} (chat, verify or invite)")]
    UnknownScene(String),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("encoding PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// What the script wants this frame.
#[derive(Debug)]
pub enum Step {
    /// Nothing yet.
    Wait,
    /// Ask the daemon for something (the fingerprint for the verify scene).
    Ask(Request),
    /// Take the screenshot now.
    Shoot,
}

/// A scripted capture in progress.
#[derive(Debug)]
pub struct Script {
    /// Where the PNG goes.
    pub path: PathBuf,
    scene: Scene,
    select: Option<String>,
    asked: bool,
    settled: u32,
    shot: bool,
    /// Set once the PNG is written (or failed); `main` turns it into the exit status.
    pub outcome: Arc<OnceLock<Result<(), String>>>,
}

impl Script {
    /// A script for `scene`, saving to `path`.
    pub fn new(path: PathBuf, scene: Scene, select: Option<String>) -> Self {
        Self {
            path,
            scene,
            select,
            asked: false,
            settled: 0,
            shot: false,
            outcome: Arc::default(),
        }
    }

    /// The script the environment asks for, if any.
    pub fn from_env() -> Result<Option<Self>, CaptureError> {
        let Some(path) = std::env::var_os("OTRD_GUI_SCREENSHOT").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let scene = match std::env::var("OTRD_GUI_SCENE").unwrap_or_default().as_str() {
            "" | "chat" => Scene::Chat,
            "verify" => Scene::Verify,
            "invite" => Scene::Invite,
            other => return Err(CaptureError::UnknownScene(other.to_owned())),
        };
        let select = std::env::var("OTRD_GUI_SELECT")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Some(Self::new(PathBuf::from(path), scene, select)))
    }

    /// Advances the script by one frame.
    pub fn step(&mut self, model: &mut ViewModel) -> Step {
        if self.shot {
            return Step::Wait;
        }
        if let Some(name) = &self.select {
            if model.selected().map(|p| p.name.as_str()) != Some(name) {
                model.select(name);
            }
        }
        let ready = match self.scene {
            Scene::Chat => chat_ready(model),
            Scene::Invite => model.invitations().next().is_some(),
            Scene::Verify => {
                if !chat_ready(model) {
                    false
                } else if model.verification().is_some() {
                    true
                } else if !self.asked {
                    self.asked = true;
                    if let Some(peer) = model.selected() {
                        return Step::Ask(Request::Fingerprint(peer.name.clone()));
                    }
                    false
                } else {
                    false
                }
            }
        };
        if !ready {
            self.settled = 0;
            return Step::Wait;
        }
        self.settled += 1;
        if self.settled < SETTLE_FRAMES {
            return Step::Wait;
        }
        self.shot = true;
        Step::Shoot
    }
}

/// The selected conversation is established, a sent message is delivered and a reply came.
pub fn chat_ready(model: &ViewModel) -> bool {
    let Some(peer) = model.selected() else {
        return false;
    };
    let chat = model.chat(&peer.name);
    peer.state == SessionState::Established
        && chat
            .iter()
            .any(|l| l.direction == Direction::Out && l.delivery == Delivery::Delivered)
        && chat.iter().any(|l| l.direction == Direction::In)
}

/// Writes `image` as an RGBA PNG at `path`.
pub fn save_png(path: &Path, image: &ColorImage) -> Result<(), CaptureError> {
    let io = |source| CaptureError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let [w, h] = image.size;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|p| p.to_srgba_unmultiplied())
        .collect();
    writer.write_image_data(&bytes)?;
    writer.finish()?;
    Ok(())
}
