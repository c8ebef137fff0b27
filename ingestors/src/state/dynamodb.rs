//! Feed state in DynamoDB: the production backend of [`FeedStateStore`],
//! shared by every ingestor of a fleet.
//!
//! Three tables, named `<prefix>feeds`, `<prefix>feed_events` and
//! `<prefix>instances`:
//!
//! * `feeds` (pk `feed_id`): the cursor (ETag, Last-Modified, publisher
//!   version, payload sha256, AP next link), `source_seq`, health, and the
//!   lease (`lease_owner`, `lease_expires_ms`, `fencing`).
//! * `feed_events` (pk `feed_id`, sk `<at_ms>#<fetch>`): every health
//!   transition with its reason, expiring through the `expires_at` TTL.
//! * `instances` (pk `instance_id`): each live ingestor's heartbeat.
//!
//! Every lease and cursor write is a conditional write, so the fencing
//! rules of the parent module hold across processes.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use votewire_core::config::StateStoreConfig;
use votewire_core::state::table_name;

use super::{
    FeedCursor, FeedState, FeedStateStore, HealthEvent, Lease, LeaseRow, OperatorAction, StateError,
};

fn store_err<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    table: &str,
) -> impl FnOnce(SdkError<E>) -> StateError {
    let table = table.to_string();
    move |e| StateError::Store {
        op,
        table,
        message: format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)),
    }
}

fn is_condition_failure<E>(e: &SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// A `create_table` answer: "already in use" means another process won
/// the race, which is as good as creating it.
fn created_or_in_use<'a>(
    table: &'a str,
) -> impl FnOnce(
    SdkError<aws_sdk_dynamodb::operation::create_table::CreateTableError>,
) -> Result<(), StateError>
+ 'a {
    move |e| {
        if e.as_service_error()
            .is_some_and(|se| se.is_resource_in_use_exception())
        {
            Ok(())
        } else {
            Err(store_err("create_table", table)(e))
        }
    }
}

fn string_attr(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn number_attr(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Feed state on DynamoDB.
#[derive(Clone)]
pub struct DynamoFeedState {
    client: Client,
    feeds: String,
    events: String,
    instances: String,
    /// How long health events are kept.
    pub event_ttl_secs: i64,
}

impl DynamoFeedState {
    /// A store on `client` using tables `feeds`, `feed_events` and `instances` behind
    /// `cfg`'s `table_prefix`; health events kept 30 days. Creates no table (see
    /// `ensure_tables`).
    pub fn new(client: Client, cfg: &StateStoreConfig) -> Self {
        Self {
            client,
            feeds: table_name(cfg, "feeds"),
            events: table_name(cfg, "feed_events"),
            instances: table_name(cfg, "instances"),
            event_ttl_secs: 30 * 86_400,
        }
    }

    /// Whether `table` exists. `describe_table`, not `list_tables`: a
    /// listing is paged (100 names a page) and an account may hold more.
    async fn table_exists(&self, table: &str) -> Result<bool, StateError> {
        match self.client.describe_table().table_name(table).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_err("describe_table", table)(e)),
        }
    }

    /// Creates `table` with string key `hash` (and sort key `range`) unless
    /// it exists; true when this call created it. A table another process
    /// created in the meantime counts as existing.
    async fn create_if_missing(
        &self,
        table: &str,
        hash: &str,
        range: Option<&str>,
    ) -> Result<bool, StateError> {
        if self.table_exists(table).await? {
            return Ok(false);
        }
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .expect("static")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("static")
        };
        let mut req = self
            .client
            .create_table()
            .table_name(table)
            .attribute_definitions(attr(hash))
            .key_schema(key(hash, KeyType::Hash))
            .billing_mode(BillingMode::PayPerRequest);
        if let Some(range) = range {
            req = req
                .attribute_definitions(attr(range))
                .key_schema(key(range, KeyType::Range));
        }
        req.send()
            .await
            .map_or_else(created_or_in_use(table), |_| Ok(()))?;
        Ok(true)
    }

    /// Sends a conditional `UpdateItem` on the feeds table: the item's new
    /// attributes when the condition held, `None` when it did not.
    async fn update_if(
        &self,
        req: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StateError> {
        match req
            .table_name(&self.feeds)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(store_err("update_item", &self.feeds)(e)),
        }
    }
}

#[async_trait::async_trait]
impl FeedStateStore for DynamoFeedState {
    async fn ensure_tables(&self) -> Result<(), StateError> {
        self.create_if_missing(&self.feeds, "feed_id", None).await?;
        self.create_if_missing(&self.instances, "instance_id", None)
            .await?;
        if self
            .create_if_missing(&self.events, "feed_id", Some("sk"))
            .await?
        {
            self.client
                .update_time_to_live()
                .table_name(&self.events)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name("expires_at")
                        .enabled(true)
                        .build()
                        .expect("static"),
                )
                .send()
                .await
                .map_err(store_err("update_time_to_live", &self.events))?;
        }
        Ok(())
    }

    async fn load(&self, feed_id: &str) -> Result<Option<FeedState>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.feeds)
            .key("feed_id", string_attr(feed_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_err("get_item", &self.feeds))?;
        Ok(out.item.map(|i| FeedState {
            feed_id: feed_id.to_string(),
            cursor: FeedCursor {
                etag: get_s(&i, "etag"),
                last_modified: get_s(&i, "last_modified"),
                version: get_s(&i, "version"),
                sha256: get_s(&i, "sha256"),
                next_request: get_s(&i, "next_request"),
                sftp_seen: get_s(&i, "sftp_seen"),
                published_as: get_s(&i, "published_as"),
            },
            source_seq: get_n(&i, "source_seq").unwrap_or(0),
            health: get_s(&i, "health").unwrap_or_else(|| "healthy".into()),
            consecutive_failures: get_n(&i, "consecutive_failures").unwrap_or(0),
            paused: i.get("paused").and_then(|v| v.as_bool().ok()).copied() == Some(true),
            operator_gen: get_n(&i, "operator_gen").unwrap_or(0),
            last_change_ms: get_n(&i, "last_change_ms"),
            last_error_ms: get_n(&i, "last_error_ms"),
            last_fetch_ms: get_n(&i, "last_fetch_ms"),
            lease: match (
                get_s(&i, "lease_owner"),
                get_n(&i, "lease_expires_ms"),
                get_n(&i, "fencing"),
            ) {
                (Some(owner), Some(expires_ms), Some(fencing)) => Some(Lease {
                    feed_id: feed_id.to_string(),
                    owner,
                    expires_ms,
                    fencing,
                }),
                _ => None,
            },
        }))
    }

    async fn renew_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
        last_fetch_ms: Option<i64>,
    ) -> Result<Option<Lease>, StateError> {
        let expires = now_ms + ttl_ms;
        // Renewal: same owner, keep the fencing counter.
        let mut req = self
            .client
            .update_item()
            .key("feed_id", string_attr(feed_id))
            .condition_expression("lease_owner = :me AND lease_expires_ms >= :now")
            .expression_attribute_values(":exp", number_attr(expires))
            .expression_attribute_values(":me", string_attr(owner))
            .expression_attribute_values(":now", number_attr(now_ms));
        req = match last_fetch_ms {
            Some(at) => req
                .update_expression("SET lease_expires_ms = :exp, last_fetch_ms = :fetched")
                .expression_attribute_values(":fetched", number_attr(at)),
            None => req.update_expression("SET lease_expires_ms = :exp"),
        };
        Ok(self.update_if(req).await?.map(|item| Lease {
            feed_id: feed_id.to_string(),
            owner: owner.to_string(),
            expires_ms: expires,
            fencing: get_n(&item, "fencing").unwrap_or(0),
        }))
    }

    async fn take_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StateError> {
        let expires = now_ms + ttl_ms;
        let req = self
            .client
            .update_item()
            .key("feed_id", string_attr(feed_id))
            .update_expression(
                "SET lease_owner = :me, lease_expires_ms = :exp ADD fencing :one REMOVE handover_to",
            )
            .condition_expression("attribute_not_exists(lease_owner) OR lease_expires_ms < :now")
            .expression_attribute_values(":exp", number_attr(expires))
            .expression_attribute_values(":me", string_attr(owner))
            .expression_attribute_values(":now", number_attr(now_ms))
            .expression_attribute_values(":one", number_attr(1));
        Ok(self.update_if(req).await?.map(|item| Lease {
            feed_id: feed_id.to_string(),
            owner: owner.to_string(),
            expires_ms: expires,
            fencing: get_n(&item, "fencing").unwrap_or(1),
        }))
    }

    async fn request_handover(&self, seen: &LeaseRow, requester: &str) -> Result<bool, StateError> {
        let Some(owner) = seen.owner.as_deref() else {
            return Ok(false);
        };
        let req = self
            .client
            .update_item()
            .key("feed_id", string_attr(&seen.feed_id))
            .update_expression("SET handover_to = :me")
            .condition_expression("lease_owner = :owner AND fencing = :seen")
            .expression_attribute_values(":me", string_attr(requester))
            .expression_attribute_values(":owner", string_attr(owner))
            .expression_attribute_values(":seen", number_attr(seen.fencing));
        Ok(self.update_if(req).await?.is_some())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<bool, StateError> {
        let req = self
            .client
            .update_item()
            .key("feed_id", string_attr(&lease.feed_id))
            .update_expression("SET lease_expires_ms = :zero REMOVE handover_to")
            .condition_expression("lease_owner = :me AND fencing = :f")
            .expression_attribute_values(":zero", number_attr(0))
            .expression_attribute_values(":me", string_attr(&lease.owner))
            .expression_attribute_values(":f", number_attr(lease.fencing));
        Ok(self.update_if(req).await?.is_some())
    }

    async fn lease_rows(&self) -> Result<Vec<LeaseRow>, StateError> {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.feeds)
                .consistent_read(true)
                .projection_expression(
                    "feed_id, lease_owner, lease_expires_ms, fencing, handover_to, operator_gen",
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_err("scan", &self.feeds))?;
            for item in out.items() {
                if let Some(feed_id) = get_s(item, "feed_id") {
                    rows.push(LeaseRow {
                        feed_id,
                        owner: get_s(item, "lease_owner"),
                        expires_ms: get_n(item, "lease_expires_ms").unwrap_or(0),
                        fencing: get_n(item, "fencing").unwrap_or(0),
                        handover_to: get_s(item, "handover_to"),
                        operator_gen: get_n(item, "operator_gen").unwrap_or(0),
                    });
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(rows);
            }
        }
    }

    async fn heartbeat(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<(), StateError> {
        self.client
            .put_item()
            .table_name(&self.instances)
            .item("instance_id", string_attr(instance))
            .item("expires_ms", number_attr(now_ms + ttl_ms))
            .item("seen_ms", number_attr(now_ms))
            .send()
            .await
            .map_err(store_err("put_item", &self.instances))?;
        Ok(())
    }

    async fn live_instances(&self, now_ms: i64) -> Result<Vec<String>, StateError> {
        let mut live = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.instances)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_err("scan", &self.instances))?;
            for item in out.items() {
                let fresh = get_n(item, "expires_ms").is_some_and(|e| e > now_ms);
                if let Some(id) = get_s(item, "instance_id").filter(|_| fresh) {
                    live.push(id);
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                live.sort();
                return Ok(live);
            }
        }
    }

    async fn commit(
        &self,
        lease: &Lease,
        cursor: &FeedCursor,
        source_seq: i64,
        changed_at_ms: Option<i64>,
    ) -> Result<(), StateError> {
        let mut set = vec!["source_seq = :seq", "consecutive_failures = :zero"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.feeds)
            .key("feed_id", string_attr(&lease.feed_id))
            .condition_expression("lease_owner = :me AND fencing = :fence AND (attribute_not_exists(source_seq) OR source_seq <= :seq)")
            .expression_attribute_values(":me", string_attr(&lease.owner))
            .expression_attribute_values(":fence", number_attr(lease.fencing))
            .expression_attribute_values(":seq", number_attr(source_seq))
            .expression_attribute_values(":zero", number_attr(0));
        let mut remove = Vec::new();
        for (field, value) in [
            ("etag", &cursor.etag),
            ("last_modified", &cursor.last_modified),
            ("version", &cursor.version),
            ("sha256", &cursor.sha256),
            ("next_request", &cursor.next_request),
            ("sftp_seen", &cursor.sftp_seen),
            ("published_as", &cursor.published_as),
        ] {
            match value {
                Some(v) => {
                    set.push(match field {
                        "etag" => "etag = :etag",
                        "last_modified" => "last_modified = :last_modified",
                        "version" => "version = :version",
                        "sha256" => "sha256 = :sha256",
                        "next_request" => "next_request = :next_request",
                        "published_as" => "published_as = :published_as",
                        _ => "sftp_seen = :sftp_seen",
                    });
                    req = req.expression_attribute_values(format!(":{field}"), string_attr(v));
                }
                None => remove.push(field),
            }
        }
        if let Some(at) = changed_at_ms {
            set.push("last_change_ms = :changed");
            req = req.expression_attribute_values(":changed", number_attr(at));
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        match req.update_expression(expr).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => {
                // Tell a lost lease from a backwards sequence number.
                let current = self.load(&lease.feed_id).await?;
                match current {
                    Some(st)
                        if st.lease.as_ref() == Some(lease)
                            || st.lease.as_ref().is_some_and(|l| {
                                l.owner == lease.owner && l.fencing == lease.fencing
                            }) =>
                    {
                        Err(StateError::SeqRegressed {
                            feed_id: lease.feed_id.clone(),
                            attempted: source_seq,
                            committed: st.source_seq,
                        })
                    }
                    _ => Err(StateError::Fenced {
                        feed_id: lease.feed_id.clone(),
                        owner: lease.owner.clone(),
                        fencing: lease.fencing,
                    }),
                }
            }
            Err(e) => Err(store_err("update_item", &self.feeds)(e)),
        }
    }

    async fn record_health(
        &self,
        lease: &Lease,
        event: &HealthEvent,
        consecutive_failures: i64,
    ) -> Result<(), StateError> {
        // A transition into trouble is also the feed's last error.
        let trouble = matches!(event.to.as_str(), "failing" | "quarantined");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.feeds)
            .key("feed_id", string_attr(&lease.feed_id))
            .update_expression(if trouble {
                "SET health = :h, consecutive_failures = :f, last_error_ms = :at"
            } else {
                "SET health = :h, consecutive_failures = :f"
            })
            .condition_expression("lease_owner = :me AND fencing = :fence")
            .expression_attribute_values(":h", string_attr(&event.to))
            .expression_attribute_values(":f", number_attr(consecutive_failures))
            .expression_attribute_values(":me", string_attr(&lease.owner))
            .expression_attribute_values(":fence", number_attr(lease.fencing));
        if trouble {
            req = req.expression_attribute_values(":at", number_attr(event.at_ms));
        }
        let res = req.send().await;
        match res {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => {
                return Err(StateError::Fenced {
                    feed_id: lease.feed_id.clone(),
                    owner: lease.owner.clone(),
                    fencing: lease.fencing,
                });
            }
            Err(e) => return Err(store_err("update_item", &self.feeds)(e)),
        }
        self.append_event(&lease.feed_id, event).await
    }

    async fn store_operator_action(
        &self,
        feed_id: &str,
        action: OperatorAction,
    ) -> Result<String, StateError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.feeds)
            .key("feed_id", string_attr(feed_id))
            .expression_attribute_values(":zero", number_attr(0))
            .expression_attribute_values(":one", number_attr(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        let bump = "operator_gen = if_not_exists(operator_gen, :zero) + :one";
        req = match action {
            OperatorAction::Pause | OperatorAction::Resume => req
                .update_expression(format!(
                    "SET paused = :p, health = :h, consecutive_failures = :zero, {bump}"
                ))
                .expression_attribute_values(
                    ":p",
                    AttributeValue::Bool(action == OperatorAction::Pause),
                )
                .expression_attribute_values(
                    ":h",
                    string_attr(action.health_after().unwrap_or("healthy")),
                ),
            OperatorAction::PollNow => req.update_expression(format!("SET {bump}")),
            OperatorAction::ResetCursor => req.update_expression(format!(
                "SET {bump} REMOVE etag, last_modified, version, sha256, next_request, sftp_seen, published_as"
            )),
        };
        let out = req
            .send()
            .await
            .map_err(store_err("update_item", &self.feeds))?;
        Ok(out
            .attributes()
            .and_then(|a| get_s(a, "health"))
            .unwrap_or_else(|| "healthy".into()))
    }

    async fn append_event(&self, feed_id: &str, event: &HealthEvent) -> Result<(), StateError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.events)
            .item("feed_id", string_attr(feed_id))
            .item(
                "sk",
                string_attr(&format!("{:013}#{}", event.at_ms, uuid::Uuid::now_v7())),
            )
            .item("at_ms", number_attr(event.at_ms))
            .item("to", string_attr(&event.to))
            .item("reason", string_attr(&event.reason))
            .item("actor", string_attr(&event.actor))
            .item(
                "expires_at",
                number_attr(event.at_ms / 1000 + self.event_ttl_secs),
            );
        if let Some(from) = &event.from {
            req = req.item("from", string_attr(from));
        }
        req.send()
            .await
            .map_err(store_err("put_item", &self.events))?;
        Ok(())
    }

    async fn history(
        &self,
        feed_id: &str,
        limit: i32,
        after: Option<String>,
    ) -> Result<(Vec<HealthEvent>, Option<String>), StateError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.events)
            .key_condition_expression("feed_id = :f")
            .expression_attribute_values(":f", string_attr(feed_id))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(sk) = after {
            q = q
                .exclusive_start_key("feed_id", string_attr(feed_id))
                .exclusive_start_key("sk", string_attr(&sk));
        }
        let out = q.send().await.map_err(store_err("query", &self.events))?;
        let events = out
            .items()
            .iter()
            .map(|i| HealthEvent {
                at_ms: get_n(i, "at_ms").unwrap_or(0),
                from: get_s(i, "from"),
                to: get_s(i, "to").unwrap_or_default(),
                reason: get_s(i, "reason").unwrap_or_default(),
                actor: get_s(i, "actor").unwrap_or_default(),
            })
            .collect();
        let next = out.last_evaluated_key().and_then(|k| get_s(k, "sk"));
        Ok((events, next))
    }
}
