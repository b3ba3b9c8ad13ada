//! The contract's error shape, `{"error": {"code", "message"}}`, and the one mapping from every refusal to
//! its status and code.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::engine::SellerError;
use crate::ledger::{LedgerError, ReturnError};
use crate::ops::OpError;

/// An error answer: status, snake_case code and a message that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header, on refusals that are only about timing (429, 503).
    pub retry_after_s: Option<u64>,
    /// The methods a known path takes, for the `Allow` header of a 405 (RFC 9110 requires it).
    pub allow: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after_s: None, allow: None }
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 400: an envelope field has the wrong type or value.
    pub fn invalid_field(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message)
    }

    /// 400: a reload found problems in the config file; the message lists every one.
    pub fn invalid_config(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", message)
    }

    /// 400: a required envelope field is absent.
    pub fn missing_field(field: &str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "missing_field", format!("{field} is required"))
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong credentials: send Authorization: Bearer <key> with the key for this endpoint",
        )
    }

    /// 404: unknown id, or one that belongs to another party.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 405: a known path with the wrong method; `allowed` lists the methods it takes (`GET`, `GET, POST`).
    pub fn method_not_allowed(allowed: String) -> ApiError {
        ApiError {
            allow: Some(allowed.clone()),
            ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("use {allowed} on this path"))
        }
    }

    /// 413: the body is over `server.max_body_bytes`.
    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is over {limit} bytes"))
    }

    /// 415: not JSON.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    }

    /// 408: the body did not arrive in time after the headers.
    pub fn request_timeout(within: Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the body did not arrive within {} ms of the headers; send it at once", within.as_millis()),
        )
    }

    /// 429: the seller is over its `max_pings_per_second`; a ping may be sent again after `retry_after_s`.
    pub fn rate_limited(per_second: u32, retry_after_s: u64) -> ApiError {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "over this seller's limit of {per_second} pings per second; retry after {retry_after_s} s \
                     (Retry-After) or ask the operator for a higher limit"
                ),
            )
        }
    }

    /// 503: the engine already runs as many auctions as it can answer in time; nothing was recorded.
    pub fn overloaded() -> ApiError {
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the server is at its limit of auctions in flight; nothing was recorded, retry shortly",
            )
        }
    }

    /// 503: the server is stopping.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; retry on another node or shortly",
        )
    }

    /// 503: cluster mode, a shared store this call needs (PostgreSQL or Redis) cannot be reached; nothing was
    /// recorded, and a held ping's bids stay held.
    pub fn unavailable(what: &str) -> ApiError {
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("{what} cannot be reached just now; nothing was recorded, retry shortly"),
            )
        }
    }

    /// 503 `unavailable`, the one case where something may have been recorded: PostgreSQL went away while the
    /// change was being committed and could not be asked afterwards (the ledger's writer asks for ten
    /// seconds). Saying "nothing was recorded" here could make an operator book a deposit twice.
    pub fn outcome_unknown() -> ApiError {
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the ledger (PostgreSQL) went away while this change was being committed, so whether it was \
                 recorded is not known yet; send it again with the same Idempotency-Key (it is recorded at most \
                 once), or read the account's transactions once it answers before making it again without one",
            )
        }
    }

    /// 403: valid credentials, not allowed for this object.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409: a seller payout larger than what the seller is owed.
    pub fn insufficient_balance(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "insufficient_balance", message)
    }

    /// 422: an `Idempotency-Key` already used for a different request on this account.
    pub fn idempotency_key_reused(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", message)
    }

    /// The response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = super::json_response(self.status, &body);
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow.and_then(|allow| HeaderValue::try_from(allow).ok()) {
            response.headers_mut().insert(ALLOW, allow);
        }
        response
    }
}

impl From<SellerError> for ApiError {
    fn from(error: SellerError) -> ApiError {
        let message = error.to_string();
        match error {
            SellerError::UnknownCampaign(_) => ApiError::new(StatusCode::BAD_REQUEST, "unknown_campaign", message),
            SellerError::InvalidLead(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_lead", message),
            SellerError::LeadMismatch(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "lead_mismatch", message),
            SellerError::PingNotFound => ApiError::not_found("ping"),
            SellerError::PingExpired => ApiError::new(StatusCode::GONE, "ping_expired", message),
            SellerError::AlreadyPosted => ApiError::new(StatusCode::CONFLICT, "already_posted", message),
            SellerError::Ledger(LedgerError::Unavailable(_)) => ApiError::unavailable("the ledger (PostgreSQL)"),
            SellerError::Ledger(LedgerError::OutcomeUnknown(_)) => ApiError::outcome_unknown(),
            SellerError::Unavailable(store) => ApiError::unavailable(store),
            SellerError::Ledger(_) => {
                tracing::error!(%message, "sale not recorded");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the sale could not be recorded; retry the post",
                )
            }
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        match error {
            LedgerError::Unavailable(_) => return ApiError::unavailable("the ledger (PostgreSQL)"),
            LedgerError::OutcomeUnknown(_) => return ApiError::outcome_unknown(),
            _ => {}
        }
        tracing::error!(%error, "ledger change not recorded");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the change could not be recorded durably, so it did not happen; retry later",
        )
    }
}

impl From<ReturnError> for ApiError {
    fn from(error: ReturnError) -> ApiError {
        let message = error.to_string();
        match error {
            ReturnError::Disabled => ApiError::new(
                StatusCode::FORBIDDEN,
                "returns_disabled",
                "returns are disabled in this buyer's contract; see GET /v1/buyer/return-policy",
            ),
            ReturnError::UnknownLead => ApiError::not_found("lead"),
            ReturnError::UnknownReturn => ApiError::not_found("return"),
            ReturnError::AlreadyReturned => ApiError::new(
                StatusCode::CONFLICT,
                "already_returned",
                "this lead already has a return; see GET /v1/buyer/returns",
            ),
            ReturnError::AlreadyDecided => ApiError::new(StatusCode::CONFLICT, "already_decided", message),
            ReturnError::Ledger(error) => error.into(),
        }
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> ApiError {
        match error {
            OpError::NotFound(what) => ApiError::not_found(what),
            OpError::InvalidField(message) => ApiError::invalid_field(message),
            OpError::Forbidden(message) => ApiError::forbidden(message),
            OpError::InvalidConfig(message) => ApiError::invalid_config(message),
            OpError::InsufficientBalance(message) => ApiError::insufficient_balance(message),
            OpError::KeyReused(message) => ApiError::idempotency_key_reused(message),
            OpError::Return(error) => error.into(),
            OpError::Ledger(error) => error.into(),
            OpError::Engine(error) => error.into(),
        }
    }
}
