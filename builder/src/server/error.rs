//! The one shape of every refusal roleoutd sends: an HTTP status and an
//! [`ErrorBody`] with a code for programs and one sentence for people.
//!
//! Handlers return [`ApiError`]; the code fixes the status
//! ([`ErrorCode::http_status`]). Internal failures are logged in full
//! where they happen and answered with a sentence that says no more than
//! "roleoutd failed", so no directory detail, key or token leaks to a
//! client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roleout_model::protocol::{ErrorBody, ErrorCode, ProtocolError};

/// A refusal, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The body sent.
    pub body: ErrorBody,
    /// Seconds a client should wait before trying again (`Retry-After`),
    /// for answers that say "not now".
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal with `code` and one sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            body: ErrorBody::new(code, message),
            retry_after: None,
        }
    }

    /// A "not now" answer (429, 503) that says when to try again.
    pub fn retry_after(code: ErrorCode, message: impl Into<String>, seconds: u64) -> Self {
        Self {
            body: ErrorBody::new(code, message),
            retry_after: Some(seconds),
        }
    }

    /// roleoutd failed: `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed inside roleoutd");
        Self::new(
            ErrorCode::Internal,
            "roleoutd failed to answer; the details are in its log.",
        )
    }

    /// A request body that could not be read as its message.
    pub fn invalid_body(error: &ProtocolError) -> Self {
        match error {
            ProtocolError::Schema { violations, .. } => Self {
                body: ErrorBody::invalid_body(violations),
                retry_after: None,
            },
            other => {
                let message: String = other.to_string().chars().take(900).collect();
                Self::new(
                    ErrorCode::InvalidBody,
                    format!("The request body is not valid: {message}."),
                )
            }
        }
    }

    /// The code sent.
    pub fn code(&self) -> ErrorCode {
        self.body.error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.body.error.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
