//! The DynamoDB-API endpoint (moto) answers the operations feed state needs:
//! table creation, conditional puts, version-checked updates and queries.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, ScalarAttributeType,
};
use votewire_core::state::table_name;
use votewire_tests::Stack;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn conditional_writes_and_queries_behave_as_feed_state_needs() {
    let (cfg, db) = Stack::load().dynamodb().await;
    let table = table_name(&cfg, "feed_events");
    db.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("feed_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("feed_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");

    // attribute_not_exists: the first put wins, the second is refused.
    let put = |version: i64| {
        db.put_item()
            .table_name(&table)
            .item("feed_id", s("clarity:GA:107556"))
            .item("sk", s("cursor"))
            .item("version", n(version))
            .condition_expression("attribute_not_exists(feed_id)")
    };
    put(1).send().await.expect("first conditional put succeeds");
    let err = put(99)
        .send()
        .await
        .expect_err("second conditional put is refused");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception()),
        "{err:?}"
    );

    // Optimistic concurrency on a version number.
    let bump = |expected: i64| {
        db.update_item()
            .table_name(&table)
            .key("feed_id", s("clarity:GA:107556"))
            .key("sk", s("cursor"))
            .update_expression("SET version = :next, etag = :etag")
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":next", n(expected + 1))
            .expression_attribute_values(":etag", s(&format!("\"v{expected}\"")))
    };
    bump(1).send().await.expect("update at the current version");
    let err = bump(1)
        .send()
        .await
        .expect_err("update at a stale version is refused");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception())
    );

    for (i, reason) in ["fetched", "unchanged", "failing"].iter().enumerate() {
        db.put_item()
            .table_name(&table)
            .item("feed_id", s("clarity:GA:107556"))
            .item("sk", s(&format!("event#{i:04}")))
            .item("reason", s(reason))
            .send()
            .await
            .unwrap();
    }
    let out = db
        .query()
        .table_name(&table)
        .key_condition_expression("feed_id = :f AND begins_with(sk, :p)")
        .expression_attribute_values(":f", s("clarity:GA:107556"))
        .expression_attribute_values(":p", s("event#"))
        .scan_index_forward(false)
        .send()
        .await
        .expect("query");
    let reasons: Vec<&str> = out
        .items()
        .iter()
        .map(|i| i["reason"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(reasons, ["failing", "unchanged", "fetched"]);

    let cursor = db
        .get_item()
        .table_name(&table)
        .key("feed_id", s("clarity:GA:107556"))
        .key("sk", s("cursor"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = cursor.item().expect("the cursor row exists");
    assert_eq!(item["version"], n(2));
    assert_eq!(item["etag"], s("\"v1\""));
}
