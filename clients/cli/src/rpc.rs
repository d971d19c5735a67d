//! `otrctl rpc`: a JSON-lines bridge to the daemon for tools that cannot speak gRPC (editor
//! plugins, scripts).
//!
//! Each stdin line is a request for any RPC of `otrd.v1.Otrd`; each gets exactly one answer line
//! on stdout, in the order the calls finish (match them by `id`). Calls run concurrently, so a
//! slow StartSession does not hold up a SendMessage. `WatchEvents` (a server stream) is answered
//! with `{"id":…,"result":{}}` once attached and then its events arrive as `{"event":{…}}` lines
//! interleaved with answers; a second WatchEvents replaces the first without losing or repeating a
//! live event (`rpc/watch.rs`). A line that cannot be read gets an error line and the bridge goes
//! on. At end of input the bridge answers the calls still in flight, stops watching and exits 0.
//! [`protocol`] defines the lines.

pub mod codec;
pub mod protocol;
mod watch;

use crate::connect;
use crate::error::CliError;
use codec::DynamicCodec;
use protocol::{Api, Call, Line};
use std::path::Path;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};
use watch::Watcher;
use zeroize::Zeroizing;

/// The longest request line accepted (1 MiB); longer lines are refused and skipped, so a runaway
/// writer cannot make the bridge grow without bound.
pub const MAX_LINE: usize = 1 << 20;

/// Output lines waiting for stdout. Bounded so a reader that stops reading slows the bridge (and,
/// through the stream's backpressure, the event feed) instead of growing memory.
const OUT_QUEUE: usize = 256;

/// Connects to the daemon at `socket` and bridges stdin/stdout until stdin ends.
pub async fn run(socket: &Path) -> Result<(), CliError> {
    let api = Api::load().map_err(|e| CliError::Internal(e.to_string()))?;
    let channel = connect::channel(socket).await?;
    serve(api, channel, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Bridges request lines from `input` to the daemon on `channel`, writing answer and event lines
/// to `output`, until `input` ends (or `output` is closed).
pub async fn serve<R, W>(api: Api, channel: Channel, input: R, output: W) -> Result<(), CliError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, lines) = mpsc::channel::<Line>(OUT_QUEUE);
    let writer = tokio::spawn(write_lines(lines, output));
    let mut input = BufReader::new(input);
    let mut calls = JoinSet::new();
    let mut watcher: Option<Watcher> = None;
    loop {
        let next = tokio::select! {
            next = read_line(&mut input) => next?,
            // The writer stopped (stdout closed): nobody can read answers any more.
            () = out.closed() => break,
        };
        let line = match next {
            ReadLine::Eof => break,
            ReadLine::TooLong => {
                let msg = format!("request line longer than {MAX_LINE} bytes; skipped");
                send(
                    &out,
                    protocol::error(&serde_json::Value::Null, Code::InvalidArgument, &msg),
                )
                .await;
                continue;
            }
            ReadLine::Line(line) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let call = match api.parse(&line) {
            Ok(call) => call,
            Err(rejected) => {
                send(&out, protocol::rejected(&rejected)).await;
                continue;
            }
        };
        drop(line);
        if call.method.is_server_streaming() {
            watcher
                .get_or_insert_with(|| Watcher::spawn(channel.clone(), out.clone()))
                .watch(call)
                .await;
        } else {
            calls.spawn(unary(channel.clone(), call, out.clone()));
        }
        // Reap finished calls so the set does not grow over a long session.
        while calls.try_join_next().is_some() {}
    }
    // End of input: answer what is in flight, stop watching, then let the writer drain.
    while calls.join_next().await.is_some() {}
    if let Some(w) = watcher {
        w.stop().await;
    }
    drop(out);
    match writer.await {
        Ok(result) => result.map_err(CliError::from),
        Err(e) => Err(CliError::Io(std::io::Error::other(e))),
    }
}

/// Carries out one unary call and queues its answer line.
async fn unary(channel: Channel, call: Call, out: mpsc::Sender<Line>) {
    let line = match call_unary(channel, &call).await {
        Ok(result) => protocol::answer(&call.id, &result),
        Err(status) => protocol::error(&call.id, status.code(), status.message()),
    };
    send(&out, line).await;
}

async fn call_unary(
    channel: Channel,
    call: &Call,
) -> Result<prost_reflect::DynamicMessage, Status> {
    let (mut grpc, codec) = prepared(channel, call).await?;
    let response = grpc
        .unary(
            tonic::Request::new(call.request.clone()),
            path(call)?,
            codec,
        )
        .await?;
    Ok(response.into_inner())
}

/// A gRPC client on `channel`, ready for one call, and the codec for `call`'s answers.
async fn prepared(
    channel: Channel,
    call: &Call,
) -> Result<(tonic::client::Grpc<Channel>, DynamicCodec), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("otrd is not reachable: {e}")))?;
    Ok((grpc, DynamicCodec::new(call.method.output())))
}

fn path(call: &Call) -> Result<PathAndQuery, Status> {
    let service = call.method.parent_service().full_name();
    PathAndQuery::try_from(format!("/{service}/{}", call.method.name()))
        .map_err(|e| Status::internal(format!("method path: {e}")))
}

/// Queues a line; a closed writer means stdout is gone, and the main loop notices that itself.
async fn send(out: &mpsc::Sender<Line>, line: Line) {
    let _ = out.send(line).await;
}

/// Writes queued lines to `output`, flushing after each so a reader sees answers at once.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut lines: mpsc::Receiver<Line>,
    mut output: W,
) -> std::io::Result<()> {
    while let Some(line) = lines.recv().await {
        output.write_all(&line).await?;
        output.flush().await?;
    }
    output.shutdown().await
}

/// One step of reading input.
enum ReadLine {
    /// A line without its newline (or the input's unterminated last part).
    Line(Zeroizing<Vec<u8>>),
    /// A line over [`MAX_LINE`], consumed and dropped.
    TooLong,
    /// No more input.
    Eof,
}

/// Reads up to the next newline, never holding more than [`MAX_LINE`] bytes of it.
async fn read_line<R: AsyncBufRead + Unpin>(input: &mut R) -> std::io::Result<ReadLine> {
    let mut line = Zeroizing::new(Vec::with_capacity(4096));
    let mut too_long = false;
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => ReadLine::TooLong,
                (false, true) => ReadLine::Eof,
                (false, false) => ReadLine::Line(line),
            });
        }
        let (chunk, used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !too_long && line.len() + chunk.len() > MAX_LINE {
            too_long = true;
            line = Zeroizing::new(Vec::new());
        }
        if !too_long {
            line.extend_from_slice(chunk);
        }
        input.consume(used);
        if done {
            if too_long {
                return Ok(ReadLine::TooLong);
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(ReadLine::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<String> {
        let mut r = BufReader::with_capacity(8, input);
        let mut out = Vec::new();
        loop {
            match read_line(&mut r).await.expect("reads") {
                ReadLine::Eof => return out,
                ReadLine::TooLong => out.push("<too long>".into()),
                ReadLine::Line(l) => out.push(String::from_utf8_lossy(&l).into_owned()),
            }
        }
    }

    #[tokio::test]
    async fn lines_split_on_newlines_across_buffer_boundaries() {
        assert_eq!(
            lines(b"{\"a\":1}\r\n\n{\"bb\":22}\nlast").await,
            vec!["{\"a\":1}", "", "{\"bb\":22}", "last"]
        );
        assert!(lines(b"").await.is_empty());
    }

    #[tokio::test]
    async fn an_overlong_line_is_skipped_and_the_next_one_read() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&input).await, vec!["<too long>", "ok"]);
    }
}
