//! The statuses a failed credential may answer with: gRFC A54's rewriting, and the
//! refusal of a secure-only credential on plaintext.

use tonic::{Code, Status};

/// gRFC A54: codes a credential must not produce are rewritten to `INTERNAL`, the
/// original code kept in the message, so a control-plane failure is never mistaken
/// for an application error.
pub(crate) fn sanitize_status(status: Status) -> Status {
    match status.code() {
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Status::internal(format!(
            "call credentials failed with illegal status code {:?}: {}",
            status.code(),
            status.message()
        )),
        _ => status,
    }
}

/// The refusal of a secure-only credential on a plaintext channel.
pub(crate) fn plaintext_refused() -> Status {
    Status::unauthenticated(
        "cannot send call credentials that require transport security over a plaintext (http://) \
         channel: use https:// with TLS, or call allow_plaintext() for loopback or a trusted mesh",
    )
}
