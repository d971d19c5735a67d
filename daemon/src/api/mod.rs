//! The gRPC API on the Unix socket: the `otrd.v1.Otrd` service over the engine, gRPC health and
//! reflection, the peer-credential check, and the socket itself.
//!
//! - [`socket`] — where the socket lives and how it is bound (or taken from systemd);
//! - [`peer`] — only the daemon's own uid is served;
//! - [`service`] — each RPC, answered through the [`EngineHandle`];
//! - [`convert`] — domain types ↔ generated types;
//! - [`status`] — engine errors → gRPC status codes;
//! - [`events`] — WatchEvents fan-out to each client.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests start the real server
//! on a temporary socket and stop it when they are done.

pub mod convert;
pub mod events;
pub mod peer;
pub mod service;
pub mod socket;
pub mod status;

use crate::engine::EngineHandle;
use otrd_proto::v1::otrd_server::OtrdServer;
use std::future::Future;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::InterceptorLayer;
use tonic::transport::Server;

pub use peer::PeerCheck;
pub use service::OtrdService;
pub use socket::{ServerSocket, SocketError, SocketFile};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The reflection service could not be built from the descriptor set.
    #[error("building gRPC reflection failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("serving gRPC failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Who may connect.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// The only uid served. The daemon's effective uid in production; tests set another to see a
    /// refusal.
    pub expected_uid: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            expected_uid: rustix::process::geteuid().as_raw(),
        }
    }
}

/// Reflection knows our API and the health service (and, by default, itself).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(otrd_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Serves the API on `listener` until `shutdown` completes, for the daemon's own uid only.
pub async fn serve(
    listener: UnixListener,
    engine: EngineHandle,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiError> {
    serve_with(listener, engine, ServeOptions::default(), shutdown).await
}

/// [`serve`] with explicit options.
///
/// On shutdown, open WatchEvents streams end with UNAVAILABLE ("the daemon is shutting down"),
/// in-flight calls finish, then this returns. The caller removes the socket file.
pub async fn serve_with(
    listener: UnixListener,
    engine: EngineHandle,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiError> {
    let (stopping_tx, stopping) = watch::channel(false);
    let otrd = OtrdServer::new(OtrdService::new(engine, stopping));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<OtrdServer<OtrdService>>().await;
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let shutdown = async move {
        shutdown.await;
        tracing::info!("API server shutting down");
        health.set_not_serving::<OtrdServer<OtrdService>>().await;
        // Nobody may be watching; that is fine.
        let _ = stopping_tx.send(true);
    };

    Server::builder()
        .layer(InterceptorLayer::new(PeerCheck::new(options.expected_uid)))
        .add_service(otrd)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
