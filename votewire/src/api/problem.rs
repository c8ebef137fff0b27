//! Every error the API returns is an RFC 9457 problem: a JSON object with
//! `type`, `title`, `status` and `detail` (what went wrong and what to do
//! next), served as `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP
    /// statuses).
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's short title.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong for this request, and what to do next.
    pub detail: String,
    /// Per-field problems (file, line and field) when a feed fails
    /// validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(skip)]
    retry_after_s: Option<u64>,
    #[serde(skip)]
    bearer_challenge: bool,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_s: None,
            bearer_challenge: false,
        }
    }

    /// A problem whose `type` names votewire's own kind.
    pub fn typed(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(status, detail);
        p.kind = format!("https://votewire.dev/problems/{kind}");
        p
    }

    pub fn with_errors(mut self, errors: Vec<String>) -> Problem {
        self.errors = errors;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after_s = Some(seconds);
        self
    }

    /// 401: the request carries no token, or one this API does not know.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        let mut p = Problem::typed(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        p.bearer_challenge = true;
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::typed(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::typed(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Problem {
        Problem::typed(StatusCode::UNPROCESSABLE_ENTITY, "invalid-feed", detail)
    }

    /// 503: a dependency (state store, broker) did not answer; retrying
    /// may help.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::typed(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).retry_after(5)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.bearer_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"votewire\""),
            );
        }
        resp
    }
}
