//! librdkafka's errors as [`BusError`]s, sorted here and nowhere else by
//! their codes (and librdkafka's own flags on a transaction call's error):
//! a fence, an error worth retrying, or a fatal one.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::REQUEST_TIMEOUT;
use crate::bus::{BrokerErrorKind, BusError};

/// The codes of a request that met a cluster in motion: a partition whose
/// leadership moves (just created, or its leader's broker stopped), or a
/// connection to a broker that went away, or a request that timed out.
/// Retriable: a replicated cluster that loses one broker must not stop a
/// stage.
fn retriable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::DestroyBroker
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
    )
}

/// The codes by which a newer owner of a transactional id fences this one
/// (librdkafka reports its own fencing as `Fenced`).
pub(super) fn is_fence(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced
    )
}

/// An error of a librdkafka call, `context` naming the call.
pub(super) fn broker(context: impl std::fmt::Display, error: KafkaError) -> BusError {
    let message = format!("{context}: {error}");
    let code = error.rdkafka_error_code();
    if code.is_some_and(is_fence) {
        return BusError::Fenced(message);
    }
    let kind = match &error {
        KafkaError::MessageConsumptionFatal(_) => BrokerErrorKind::Fatal,
        KafkaError::Transaction(t) if t.is_fatal() => BrokerErrorKind::Fatal,
        KafkaError::Transaction(t) if t.is_retriable() => BrokerErrorKind::Retriable,
        _ => kind_of(code),
    };
    BusError::Broker { kind, message }
}

/// A broker's answer of `code` to a request, `context` naming it.
pub(super) fn refused(context: impl std::fmt::Display, code: RDKafkaErrorCode) -> BusError {
    let message = format!("{context}: {code}");
    if is_fence(code) {
        return BusError::Fenced(message);
    }
    BusError::Broker {
        kind: kind_of(Some(code)),
        message,
    }
}

/// The kind of an error by its code; an error without one is fatal.
pub(super) fn kind_of(code: Option<RDKafkaErrorCode>) -> BrokerErrorKind {
    if code.is_some_and(retriable) {
        BrokerErrorKind::Retriable
    } else {
        BrokerErrorKind::Fatal
    }
}

/// An error this backend finds itself, of the given kind.
pub(super) fn failed(kind: BrokerErrorKind, message: String) -> BusError {
    BusError::Broker { kind, message }
}

/// Calls `request` until it succeeds, or fails with an error that is not
/// retriable, or [`REQUEST_TIMEOUT`] has passed.
pub(super) fn retrying<T>(mut request: impl FnMut() -> Result<T, BusError>) -> Result<T, BusError> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        match request() {
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_fenced_retriable_and_fatal() {
        let of = |error: KafkaError| broker("call", error);
        assert!(matches!(
            of(KafkaError::MessageProduction(
                RDKafkaErrorCode::ProducerFenced
            )),
            BusError::Fenced(_)
        ));
        assert!(
            of(KafkaError::MetadataFetch(
                RDKafkaErrorCode::LeaderNotAvailable
            ))
            .is_retriable()
        );
        assert!(of(KafkaError::OffsetFetch(RDKafkaErrorCode::AllBrokersDown)).is_retriable());
        assert!(
            !of(KafkaError::MetadataFetch(
                RDKafkaErrorCode::TopicAuthorizationFailed
            ))
            .is_retriable()
        );
        assert!(!of(KafkaError::ClientCreation("x".into())).is_retriable());
        // Fatal whatever the code: librdkafka gave up on the consumer.
        assert!(
            !of(KafkaError::MessageConsumptionFatal(
                RDKafkaErrorCode::BrokerTransportFailure
            ))
            .is_retriable()
        );
        assert!(refused("create topic t", RDKafkaErrorCode::RequestTimedOut).is_retriable());
        assert!(matches!(
            refused("commit", RDKafkaErrorCode::InvalidProducerEpoch),
            BusError::Fenced(_)
        ));
        assert_eq!(
            of(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic)).to_string(),
            format!(
                "broker: call: {}",
                KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic)
            ),
            "the message as before the kinds"
        );
    }
}
