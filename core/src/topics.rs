//! The topics votewire declares, and how the cluster is made to hold them.
//!
//! [`declared_topics`] is the topic set from `[topics]`: partition counts,
//! the replication factor, the cleanup policy each topic needs and the
//! operator's extra settings (`[topics.config]`). [`ensure_topics`] creates
//! what is missing and checks what exists:
//!
//! * it **refuses to create** a topic whose replication factor is above the
//!   cluster's broker count (the create would fail) or below the
//!   `min.insync.replicas` that applies to it (every `acks=all` write would
//!   then fail with `NOT_ENOUGH_REPLICAS`, as on MSK with RF 1), naming the
//!   setting to change;
//! * it **reports**, never silently accepts, an existing topic whose
//!   partitions, replication factor, cleanup policy or declared settings
//!   differ from the declaration. It changes nothing on an existing topic:
//!   adding partitions moves contests between partitions mid-night, and
//!   that is the operator's decision.
//!
//! Nothing here retries: a refusal is a configuration mistake, and a broker
//! error is returned to the caller, who knows whether to wait.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResourceResult, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::{KafkaConfig, TopicsConfig};
use crate::kafka::{KafkaClientContext, KafkaSetupError, admin_client, cluster_metadata};

/// One topic votewire needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name.
    pub name: String,
    /// Its partition count.
    pub partitions: i32,
    /// Its replication factor.
    pub replication_factor: i32,
    /// `compact` or `delete`.
    pub cleanup_policy: &'static str,
    /// Further topic-level settings (`min.insync.replicas`, `segment.ms`, …),
    /// set at creation and compared on an existing topic.
    pub settings: BTreeMap<String, String>,
}

impl TopicSpec {
    /// A topic with no settings beyond its cleanup policy.
    pub fn new(
        name: &str,
        partitions: i32,
        replication_factor: i32,
        cleanup_policy: &'static str,
    ) -> TopicSpec {
        TopicSpec {
            name: name.to_string(),
            partitions,
            replication_factor,
            cleanup_policy,
            settings: BTreeMap::new(),
        }
    }
}

/// The declared topic set: compacted votes, results (live and test), feed
/// status and alerts;
/// time-retained snapshots and dead letters.
pub fn declared_topics(topics: &TopicsConfig) -> Vec<TopicSpec> {
    let spec = |name: &str, partitions, cleanup_policy| TopicSpec {
        settings: topics.config.clone(),
        ..TopicSpec::new(name, partitions, topics.replication_factor, cleanup_policy)
    };
    vec![
        spec(&topics.votes, topics.contest_partitions, "compact"),
        spec(&topics.snapshots, topics.other_partitions, "delete"),
        spec(&topics.results, topics.contest_partitions, "compact"),
        spec(&topics.results_test, topics.contest_partitions, "compact"),
        spec(&topics.feed_status, topics.other_partitions, "compact"),
        spec(&topics.alerts, topics.other_partitions, "compact"),
        spec(&topics.dlq, topics.other_partitions, "delete"),
    ]
}

/// One way an existing topic differs from its declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDifference {
    /// `partitions`, `replication factor`, or a topic setting's name.
    pub setting: String,
    /// What the declaration says.
    pub declared: String,
    /// What the cluster has.
    pub actual: String,
}

/// What [`ensure_topics`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// It did not exist and was created as declared.
    Created,
    /// It existed and matches the declaration.
    Matches,
    /// It existed and differs; nothing was changed.
    Differs(Vec<TopicDifference>),
    /// The broker would not describe it to this principal (why); it was
    /// neither created nor checked.
    Unreadable(String),
}

/// One declared topic and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    /// The declaration.
    pub spec: TopicSpec,
    /// What was found or done.
    pub outcome: TopicOutcome,
    /// Why an existing topic's settings (cleanup policy and the declared
    /// ones) could not be compared, when they could not (a principal
    /// without `DescribeConfigs` on it); partitions and replication are
    /// compared from metadata all the same.
    pub settings_unread: Option<String>,
}

impl TopicReport {
    /// One line naming every difference of an existing topic from its
    /// declaration (`None` when it was created or matches): what a service
    /// warns about at start and `topics ensure` fails on.
    pub fn differences(&self) -> Option<String> {
        let TopicOutcome::Differs(diffs) = &self.outcome else {
            return None;
        };
        let listed: Vec<String> = diffs
            .iter()
            .map(|d| format!("{} is {} (declared {})", d.setting, d.actual, d.declared))
            .collect();
        Some(format!(
            "topic {} differs from its declaration: {}",
            self.spec.name,
            listed.join(", ")
        ))
    }
}

/// Creates every declared topic of `kafka`'s cluster that is missing and
/// checks those that exist (see [`declared_topics`]): what each service does
/// at start and what `votewire topics ensure` does.
pub async fn ensure_declared_topics(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
) -> Result<Vec<TopicReport>, KafkaSetupError> {
    ensure_topics(kafka, &declared_topics(topics)).await
}

/// Creates every topic in `specs` that does not exist yet, after checking
/// its replication factor against the cluster, and compares every existing
/// one with its spec.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<TopicReport>, KafkaSetupError> {
    for spec in specs {
        if spec.settings.contains_key("cleanup.policy") {
            return Err(KafkaSetupError::TopicRefused {
                topic: spec.name.clone(),
                problem: "cleanup.policy is votewire's to set (votes, results and feed status \
                          are compacted, snapshots and dead letters deleted)"
                    .into(),
                setting: "topics.config (remove cleanup.policy)",
                retry_may_help: false,
            });
        }
    }
    let admin = admin_client(kafka)?;
    let md = cluster_metadata(kafka, None)?;
    let brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    let existing: BTreeMap<&str, &rdkafka::metadata::MetadataTopic> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name(), t))
        .collect();
    // A topic this principal may not describe exists as far as we can
    // tell (creating it would be refused as well): it is reported, not
    // created. Each service may describe only the topics it uses.
    let unreadable: BTreeMap<&str, String> = md
        .topics()
        .iter()
        .filter_map(|t| {
            let code = RDKafkaErrorCode::from(t.error()?);
            (code == RDKafkaErrorCode::TopicAuthorizationFailed)
                .then(|| (t.name(), format!("describing it: {code}")))
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_millis(kafka.request_timeout_ms)))
        .request_timeout(Some(Duration::from_millis(kafka.request_timeout_ms)));

    let missing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| {
            !existing.contains_key(s.name.as_str()) && !unreadable.contains_key(s.name.as_str())
        })
        .collect();
    if !missing.is_empty() {
        let cluster_min_isr = broker_min_insync_replicas(&admin, &opts, &brokers).await?;
        for spec in &missing {
            check_replication(spec, brokers.len(), cluster_min_isr)?;
        }
    }
    let present: Vec<&str> = specs
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| existing.contains_key(n))
        .collect();
    let actual_settings = topic_settings(&admin, &opts, &present).await;

    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(why) = unreadable.get(spec.name.as_str()) {
            out.push(TopicReport {
                spec: spec.clone(),
                outcome: TopicOutcome::Unreadable(why.clone()),
                settings_unread: Some(why.clone()),
            });
            continue;
        }
        let (outcome, settings_unread) = match existing.get(spec.name.as_str()) {
            Some(topic) => match &actual_settings {
                Ok(all) => match all.get(spec.name.as_str()) {
                    Some(Ok(settings)) => (compare(spec, topic, Some(settings)), None),
                    Some(Err(e)) => (compare(spec, topic, None), Some(e.clone())),
                    None => (compare(spec, topic, None), Some("not described".into())),
                },
                Err(e) => (compare(spec, topic, None), Some(e.to_string())),
            },
            None => (create(kafka, &admin, &opts, spec).await?, None),
        };
        out.push(TopicReport {
            spec: spec.clone(),
            outcome,
            settings_unread,
        });
    }
    Ok(out)
}

/// The refusal of a replication factor that cannot work on this cluster.
fn check_replication(
    spec: &TopicSpec,
    brokers: usize,
    cluster_min_isr: i32,
) -> Result<(), KafkaSetupError> {
    let rf = spec.replication_factor;
    let refuse = |problem: String, setting: &'static str| KafkaSetupError::TopicRefused {
        topic: spec.name.clone(),
        problem,
        setting,
        retry_may_help: false,
    };
    let broker_count = i32::try_from(brokers).unwrap_or(i32::MAX);
    if rf < 1 || rf > broker_count {
        // Only live brokers are listed: during a rolling restart a retry
        // may find enough.
        return Err(KafkaSetupError::TopicRefused {
            topic: spec.name.clone(),
            problem: format!(
                "replication factor {rf} needs 1 to {broker_count} (the cluster's live brokers \
                 now; a retry helps if a broker is restarting)"
            ),
            setting: "topics.replication_factor (VOTEWIRE_TOPICS_REPLICATION_FACTOR)",
            retry_may_help: rf >= 1,
        });
    }
    let (min_isr, from) = match spec.settings.get("min.insync.replicas") {
        Some(v) => (
            v.parse::<i32>().map_err(|_| {
                refuse(
                    format!("min.insync.replicas {v:?} is not a number"),
                    "topics.config.\"min.insync.replicas\"",
                )
            })?,
            "its declared min.insync.replicas",
        ),
        None => (cluster_min_isr, "the cluster's min.insync.replicas"),
    };
    if rf < min_isr {
        return Err(refuse(
            format!(
                "replication factor {rf} is below {from} ({min_isr}): every acks=all write \
                 would fail with NOT_ENOUGH_REPLICAS"
            ),
            "topics.replication_factor (VOTEWIRE_TOPICS_REPLICATION_FACTOR)",
        ));
    }
    Ok(())
}

async fn create(
    kafka: &KafkaConfig,
    admin: &AdminClient<KafkaClientContext>,
    opts: &AdminOptions,
    spec: &TopicSpec,
) -> Result<TopicOutcome, KafkaSetupError> {
    let mut new = NewTopic::new(
        &spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication_factor),
    )
    .set("cleanup.policy", spec.cleanup_policy);
    for (k, v) in &spec.settings {
        new = new.set(k, v);
    }
    let failed = |source| KafkaSetupError::CreateTopic {
        topic: spec.name.clone(),
        source,
    };
    let results = admin.create_topics([&new], opts).await.map_err(failed)?;
    for r in results {
        match r {
            // Another process created it between our metadata request and
            // ours; it was created from the same declaration or is checked
            // on the next ensure.
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(KafkaError::AdminOp(code))),
        }
    }
    wait_until_led(kafka, spec).await?;
    Ok(TopicOutcome::Created)
}

/// Waits until the brokers' metadata shows every partition of a topic just
/// created with a leader: the controller answers CreateTopics before every
/// broker knows the topic, and a producer or reader starting right after
/// would otherwise see it missing.
async fn wait_until_led(kafka: &KafkaConfig, spec: &TopicSpec) -> Result<(), KafkaSetupError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(kafka.request_timeout_ms);
    loop {
        let md = cluster_metadata(kafka, Some(&spec.name))?;
        let led = md.topics().iter().any(|t| {
            t.name() == spec.name
                && t.error().is_none()
                && t.partitions().len() == usize::try_from(spec.partitions).unwrap_or(0)
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.error().is_none())
        });
        if led {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KafkaSetupError::CreateTopic {
                topic: spec.name.clone(),
                source: KafkaError::AdminOp(RDKafkaErrorCode::LeaderNotAvailable),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn compare(
    spec: &TopicSpec,
    topic: &rdkafka::metadata::MetadataTopic,
    settings: Option<&BTreeMap<String, String>>,
) -> TopicOutcome {
    let mut diffs = Vec::new();
    let mut differs = |setting: &str, declared: String, actual: String| {
        if declared != actual {
            diffs.push(TopicDifference {
                setting: setting.to_string(),
                declared,
                actual,
            });
        }
    };
    differs(
        "partitions",
        spec.partitions.to_string(),
        topic.partitions().len().to_string(),
    );
    let replicas = topic
        .partitions()
        .iter()
        .map(|p| p.replicas().len())
        .min()
        .unwrap_or(0);
    differs(
        "replication factor",
        spec.replication_factor.to_string(),
        replicas.to_string(),
    );
    if let Some(settings) = settings {
        let actual = |name: &str| {
            settings
                .get(name)
                .cloned()
                .unwrap_or_else(|| "(not set)".into())
        };
        differs(
            "cleanup.policy",
            spec.cleanup_policy.to_string(),
            actual("cleanup.policy"),
        );
        for (k, v) in &spec.settings {
            differs(k, v.clone(), actual(k));
        }
    }
    if diffs.is_empty() {
        TopicOutcome::Matches
    } else {
        TopicOutcome::Differs(diffs)
    }
}

/// The `min.insync.replicas` a new topic gets from the cluster: the value
/// one live broker reports (brokers of one cluster share it; MSK sets it in
/// the cluster configuration).
async fn broker_min_insync_replicas(
    admin: &AdminClient<KafkaClientContext>,
    opts: &AdminOptions,
    brokers: &[i32],
) -> Result<i32, KafkaSetupError> {
    let Some(&broker) = brokers.first() else {
        return Err(KafkaSetupError::DescribeConfigs {
            resource: "the cluster".into(),
            source: KafkaError::AdminOp(RDKafkaErrorCode::BrokerNotAvailable),
        });
    };
    let resource = format!("broker {broker}");
    let results = describe(admin, opts, &[ResourceSpecifier::Broker(broker)], &resource).await?;
    // Never guessed: a principal that may not read the broker's settings
    // must not get a replication factor past the check.
    let failed = |code| KafkaSetupError::DescribeConfigs {
        resource: resource.clone(),
        source: KafkaError::AdminOp(code),
    };
    let config = results
        .into_iter()
        .next()
        .ok_or_else(|| failed(RDKafkaErrorCode::UnknownTopicOrPartition))?
        .map_err(failed)?;
    config
        .get("min.insync.replicas")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| failed(RDKafkaErrorCode::InvalidConfig))
}

/// Every topic setting of each of `topics`, by topic name, or why that
/// topic's could not be read.
type TopicSettings = BTreeMap<String, Result<BTreeMap<String, String>, String>>;

async fn topic_settings(
    admin: &AdminClient<KafkaClientContext>,
    opts: &AdminOptions,
    topics: &[&str],
) -> Result<TopicSettings, KafkaSetupError> {
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let specifiers: Vec<ResourceSpecifier> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = describe(admin, opts, &specifiers, &topics.join(", ")).await?;
    let mut out = BTreeMap::new();
    for (name, result) in topics.iter().zip(results) {
        let values = result
            .map(|resource| {
                resource
                    .entries
                    .iter()
                    .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                    .collect()
            })
            .map_err(|code| format!("describing topic {name}'s configuration: {code}"));
        out.insert((*name).to_string(), values);
    }
    Ok(out)
}

async fn describe(
    admin: &AdminClient<KafkaClientContext>,
    opts: &AdminOptions,
    specifiers: &[ResourceSpecifier<'_>],
    resource: &str,
) -> Result<Vec<ConfigResourceResult>, KafkaSetupError> {
    admin
        .describe_configs(specifiers, opts)
        .await
        .map_err(|source| KafkaSetupError::DescribeConfigs {
            resource: resource.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_results_and_feed_status_are_compacted() {
        let specs = declared_topics(&TopicsConfig::default());
        let policy = |n: &str| specs.iter().find(|s| s.name == n).unwrap().cleanup_policy;
        assert_eq!(policy("votewire.votes.v1"), "compact");
        assert_eq!(policy("votewire.results.v1"), "compact");
        assert_eq!(policy("votewire.results-test.v1"), "compact");
        assert_eq!(policy("votewire.feed-status.v1"), "compact");
        assert_eq!(policy("votewire.alerts.v1"), "compact");
        assert_eq!(policy("votewire.snapshots.v1"), "delete");
        assert_eq!(policy("votewire.dlq.v1"), "delete");
    }

    #[test]
    fn the_default_declaration_replicates_three_times_as_msk_requires() {
        for spec in declared_topics(&TopicsConfig::default()) {
            assert_eq!(spec.replication_factor, 3, "{}", spec.name);
        }
    }

    #[test]
    fn a_replication_factor_below_min_insync_replicas_is_refused_naming_the_setting() {
        let spec = TopicSpec::new("t", 3, 1, "compact");
        let err = check_replication(&spec, 3, 2).unwrap_err().to_string();
        assert!(
            err.contains("below the cluster's min.insync.replicas (2)"),
            "{err}"
        );
        assert!(err.contains("VOTEWIRE_TOPICS_REPLICATION_FACTOR"), "{err}");
        assert!(check_replication(&TopicSpec::new("t", 3, 2, "compact"), 3, 2).is_ok());
    }

    #[test]
    fn a_replication_factor_above_the_broker_count_is_refused() {
        let err = check_replication(&TopicSpec::new("t", 3, 3, "delete"), 1, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs 1 to 1"), "{err}");
    }

    #[test]
    fn a_declared_min_insync_replicas_outranks_the_clusters() {
        let mut spec = TopicSpec::new("t", 3, 1, "delete");
        spec.settings
            .insert("min.insync.replicas".into(), "1".into());
        assert!(check_replication(&spec, 3, 2).is_ok());
        spec.settings
            .insert("min.insync.replicas".into(), "3".into());
        let err = check_replication(&spec, 3, 2).unwrap_err().to_string();
        assert!(
            err.contains("its declared min.insync.replicas (3)"),
            "{err}"
        );
    }
}
