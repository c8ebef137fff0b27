//! The exit statuses of every `votewire` command, one meaning each
//! (docs/operators.md, "Exit codes"), so a script or a supervisor can tell
//! a typo from a bad payload from a broker that is down.

use std::process::ExitCode;

use rdkafka::error::RDKafkaErrorCode;

/// Why a command did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command ran and what it checked failed (`feeds validate` found
    /// problems, `demo --check` differed, declared topics differ), or an
    /// error of no class below.
    Failure = 1,
    /// The command line is wrong (clap's own code, and an unknown
    /// `--format`). Retrying the same command cannot help.
    Usage = 2,
    /// The payload was rejected (`transform`, `feeds test`): the error
    /// names the feed, the class and the place.
    Rejected = 3,
    /// A service did not answer: a Kafka broker, the operator API, a
    /// source (sysexits' `EX_UNAVAILABLE`). Retrying later may help (a
    /// TLS failure to connect is counted here too: reqwest does not tell
    /// it from a refused connection).
    Unavailable = 69,
    /// votewire's own configuration could not be loaded: the config file,
    /// or a `VOTEWIRE_…` variable (sysexits' `EX_CONFIG`).
    Config = 78,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// A service that did not answer, for the places that know it without a
/// client error to show (a child process's port that never opened).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// The class of a command's error, from every cause in its chain.
pub fn of_error(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if cause.downcast_ref::<Unreachable>().is_some() {
            return Exit::Unavailable;
        }
        if let Some(r) = cause.downcast_ref::<reqwest::Error>()
            && (r.is_connect() || r.is_timeout())
        {
            return Exit::Unavailable;
        }
        if let Some(k) = cause.downcast_ref::<rdkafka::error::KafkaError>()
            && kafka_code(k).is_some_and(broker_unreachable)
        {
            return Exit::Unavailable;
        }
        if let Some(votewire_core::kafka::KafkaSetupError::Metadata { .. }) =
            cause.downcast_ref::<votewire_core::kafka::KafkaSetupError>()
        {
            return Exit::Unavailable;
        }
    }
    Exit::Failure
}

/// Standard output could not be written because its reader has gone
/// (`votewire tail results | head`): the output was cut short on
/// purpose, so the command exits 0 without a word.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub struct StdoutClosed;

/// `result` of a write to standard output, with a closed pipe as
/// [`StdoutClosed`] (a broken pipe elsewhere, a socket's, stays an error).
pub fn stdout_write(result: std::io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// Writes `text` to standard output at once, a closed pipe as
/// [`StdoutClosed`] (which `main` ends with exit 0).
pub fn print(text: &str) -> anyhow::Result<()> {
    stdout_write(std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        text.as_bytes(),
    ))
}

/// Whether `e` is [`StdoutClosed`].
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|cause| cause.downcast_ref::<StdoutClosed>().is_some())
}

/// The librdkafka code of `e`, admin operations' included (rdkafka's
/// `rdkafka_error_code` has none for those).
fn kafka_code(e: &rdkafka::error::KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        rdkafka::error::KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    }
}

/// librdkafka's codes for "no broker answered in time".
fn broker_unreachable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::Resolve
    )
}
