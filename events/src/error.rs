use thiserror::Error;

/// Why a message or event could not be read. Every variant names what is wrong; none of them
/// is a reason to drop the message: the runtime leaves it for its dead-letter queue.
#[derive(Debug, Error)]
pub enum EventError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),

    #[error("message body is a JSON {0}, not an object")]
    NotAnObject(&'static str),

    #[error(
        "message is neither an EventBridge event (no `detail-type`) nor an Intraday message (no `type`)"
    )]
    UnknownShape,

    #[error(
        "message type `{0}` is unknown; expected one of RunRequested, LaunchRequested, ExtractionCompleted, Alert"
    )]
    UnknownType(String),

    #[error("message field `{0}` is missing")]
    MissingField(&'static str),

    #[error("message field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },

    #[error(
        "{kind} version {version} is newer than this release understands (up to {supported}); \
         deploy the newer release, then redrive the message from the dead-letter queue"
    )]
    VersionTooNew {
        kind: String,
        version: u64,
        supported: u32,
    },

    #[error("the {service} handles {handles}, not {got}; send it to its own queue")]
    Unexpected {
        service: &'static str,
        handles: &'static str,
        got: String,
    },

    #[error("{kind} is not valid at `{path}`: {reason}")]
    Invalid {
        kind: String,
        path: String,
        reason: String,
    },
}
