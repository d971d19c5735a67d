//! How engine errors reach a client: a gRPC code it can act on and a message a person can read.

use crate::engine::EngineError;
use tonic::Status;

/// Maps an [`EngineError`] to the gRPC status a client sees.
///
/// UNIMPLEMENTED keeps the engine's message and says so up front, so a front-end can print it as
/// is; a vanished engine is UNAVAILABLE (try again once the daemon is back).
pub fn engine_status(err: EngineError) -> Status {
    match err {
        EngineError::NotFound(m) => Status::not_found(m),
        EngineError::FailedPrecondition(m) => Status::failed_precondition(m),
        EngineError::InvalidArgument(m) => Status::invalid_argument(m),
        EngineError::Unavailable(m) => Status::unavailable(m),
        EngineError::Unimplemented(m) => Status::unimplemented(m),
        e @ EngineError::ShuttingDown => Status::unavailable(e.to_string()),
        EngineError::Internal(m) => {
            tracing::error!(error = %m, "internal engine error");
            Status::internal(format!("internal error in otrd: {m}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn every_engine_error_has_its_code_and_message() {
        let cases = [
            (EngineError::NotFound("no user bob".into()), Code::NotFound),
            (
                EngineError::FailedPrecondition("not established".into()),
                Code::FailedPrecondition,
            ),
            (
                EngineError::InvalidArgument("bad".into()),
                Code::InvalidArgument,
            ),
            (
                EngineError::Unavailable("offline".into()),
                Code::Unavailable,
            ),
            (
                EngineError::Unimplemented("not yet".into()),
                Code::Unimplemented,
            ),
            (EngineError::ShuttingDown, Code::Unavailable),
            (EngineError::Internal("boom".into()), Code::Internal),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            let status = engine_status(err);
            assert_eq!(status.code(), code);
            assert!(status.message().contains(&text), "{}", status.message());
        }
    }
}
