//! A test whose service is unreachable fails, naming the service and the
//! command that starts it; it never skips.

use votewire_tests::Stack;

fn panic_text(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("must panic, not skip");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn an_unreachable_broker_fails_with_the_service_name_and_the_start_command() {
    let mut stack = Stack::load();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Nothing listens once the listener is dropped.
    stack.set_var_for_test(
        "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
        &format!("127.0.0.1:{}", closed.port()),
    );
    let text = panic_text(move || {
        stack.kafka();
    });
    assert!(text.contains("Kafka at "), "{text}");
    assert!(text.contains("deploy/local/stack up"), "{text}");
}

#[test]
fn a_missing_fixture_fails_loudly_with_its_path() {
    let text = panic_text(|| {
        votewire_tests::fixture("no_such_family/missing.xml");
    });
    assert!(
        text.contains("no_such_family/missing.xml") && text.contains("is missing"),
        "{text}"
    );
}
