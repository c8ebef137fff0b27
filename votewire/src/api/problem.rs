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

/// Problem answers as OpenAPI responses: `application/problem+json` with
/// the [`Problem`] schema, one per `(status, description)`.
fn problem_responses(
    answers: &[(u16, &str)],
) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    answers
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", content)
                .build();
            (status.to_string(), response.into())
        })
        .collect()
}

/// What every `/v1` call may answer besides its own: 401 (no or unknown
/// token) and 429 (rate limited). For `responses(…)` in a
/// `#[utoipa::path]`, as the other answer lists here are.
pub struct BearerProblems;

impl utoipa::IntoResponses for BearerProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problem_responses(&[(401, "No or unknown token"), (429, "Rate limited")])
    }
}

/// What a changing call may also answer: 403 for a read token.
pub struct AdminProblems;

impl utoipa::IntoResponses for AdminProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problem_responses(&[(403, "A read token")])
    }
}

/// What a call with a JSON body may also answer: 400 (not JSON) and 413
/// (past the body cap).
pub struct BodyProblems;

impl utoipa::IntoResponses for BodyProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problem_responses(&[(400, "Not JSON"), (413, "Body too large")])
    }
}

/// What a call that reads the feed-state store may also answer: 503.
pub struct StoreProblems;

impl utoipa::IntoResponses for StoreProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problem_responses(&[(503, "The state store did not answer")])
    }
}
