//! Waiting for events on a WatchEvents stream, with a deadline instead of a sleep.

use anyhow::{bail, Context};
use otrd_proto::v1::{event::Kind, Event};
use std::time::Duration;
use tonic::Streaming;

/// Reads events until one satisfies `pred`, failing after `within`. Returns the matching event;
/// events before it are returned in the error message if nothing matches.
pub async fn wait_for(
    stream: &mut Streaming<Event>,
    within: Duration,
    mut pred: impl FnMut(&Kind) -> bool,
) -> anyhow::Result<Kind> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        match next {
            Err(_) => bail!("no matching event within {within:?}; saw: {seen:#?}"),
            Ok(r) => {
                let event = r?.context("event stream ended")?;
                let Some(kind) = event.kind else { continue };
                if pred(&kind) {
                    return Ok(kind);
                }
                seen.push(kind);
            }
        }
    }
}
