//! Writing a feed without changing anything: `POST /v1/feeds/validate`
//! checks a feed exactly as `POST /v1/feeds` would before creating it, and
//! `GET /v1/families` lists what a feed's `family` may be. Any token may
//! ask (neither writes); a console or an editor calls them while a feed is
//! being written.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{BearerProblems, BodyProblems, Problem};
use super::{Shared, json_body};

/// A feed that passed validation.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedValidation {
    /// The feed's id.
    pub id: String,
    /// A feed with this id is in the registry already: `PUT
    /// /v1/feeds/{id}` replaces it, `POST /v1/feeds` would be refused.
    pub exists: bool,
    /// The entry as it would be stored; secrets appear by reference only.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// Validates a feed without creating it: the same checks as `POST
/// /v1/feeds` (and `votewire feeds validate`), every problem listed.
#[utoipa::path(post, path = "/v1/feeds/validate", tag = "feeds", security(("bearer" = [])),
    request_body(content = super::feeds::FeedConfigBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The feed is valid", body = FeedValidation),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The feed fails validation", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A temporary file could not be written", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        BodyProblems,
    ))]
pub async fn validate_feed(
    _caller: Caller,
    State(state): State<Shared>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<FeedValidation>, Problem> {
    let body = json_body(body)?;
    let (feed, exists, config) = state.registry.validate(&body)?;
    Ok(Json(FeedValidation {
        id: feed.entry.id.get_ref().clone(),
        exists,
        config,
    }))
}

/// One transformer family.
#[derive(Debug, Serialize, ToSchema)]
pub struct FamilyView {
    /// A feed's `family`.
    pub name: &'static str,
    /// What it reads.
    pub reads: &'static str,
    /// A feed of this family needs a `[feed.mapping]` (or `mapping_file`).
    pub needs_mapping: bool,
    /// The format defines negative counts (adjustment rows); elsewhere a
    /// negative count is a rejection.
    pub signed_counts: bool,
    /// The JSON Schema of the family's `[feed.mapping]` (its fields, their
    /// types and descriptions), as in `docs/schemas/`; null for a family
    /// whose mapping is not typed.
    #[schema(value_type = Option<Object>)]
    pub mapping_schema: Option<serde_json::Value>,
}

/// The transformer families a feed may name, in the registry's order.
#[utoipa::path(get, path = "/v1/families", tag = "feeds", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every family", body = [FamilyView]),
        BearerProblems,
    ))]
pub async fn families(_caller: Caller) -> Json<Vec<FamilyView>> {
    Json(
        votewire_transformers::FAMILIES
            .iter()
            .map(|f| FamilyView {
                name: f.name,
                reads: f.reads,
                needs_mapping: f.needs_mapping,
                signed_counts: f.signed_counts,
                mapping_schema: votewire_ingestors::feeds::schema::mapping_schema(f.name),
            })
            .collect(),
    )
}
