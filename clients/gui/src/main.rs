//! `otrd-gui`: the desktop window. Finds the daemon's socket (`$OTRD_SOCKET`,
//! `$XDG_RUNTIME_DIR/otrd/otrd.sock` or `$TMPDIR/otrd-$UID/otrd.sock`, see [`socket`]), runs the gRPC worker on a small tokio runtime and the
//! window on the main thread. Keeps nothing on disk.

use eframe::egui;
use otrd_gui::{capture::Script, socket, ui::GuiApp, worker};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otrd-gui: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let socket = socket::default_path();
    let script = Script::from_env()?;
    let outcome = script.as_ref().map(|s| s.outcome.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("otrd")
            .with_app_id("otrd-gui")
            .with_inner_size([900.0, 600.0]),
        ..Default::default()
    };
    let rt = &runtime;
    eframe::run_native(
        "otrd",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let _entered = rt.enter();
            let (handle, updates) = worker::spawn(socket, Arc::new(move || ctx.request_repaint()));
            Ok(Box::new(GuiApp::new(handle, updates, script)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window failed: {e}"))?;
    Ok(match outcome.as_ref().and_then(|o| o.get()) {
        None if outcome.is_some() => {
            eprintln!("otrd-gui: closed before the screenshot was taken");
            ExitCode::FAILURE
        }
        Some(Err(e)) => {
            eprintln!("otrd-gui: screenshot failed: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    })
}
