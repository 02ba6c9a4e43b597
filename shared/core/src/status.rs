//! Job statuses, with the original system's names, and the one table of allowed transitions.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The status of one collection in one run, as stored in the job table's `JobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum JobStatus {
    #[serde(rename = "LAMBDA_TRIGGERED")]
    LambdaTriggered,
    #[serde(rename = "WAITING")]
    Waiting,
    #[serde(rename = "DEFERRED")]
    Deferred,
    #[serde(rename = "EMR_LAUNCHED")]
    EmrLaunched,
    #[serde(rename = "EMR_PROCESSING")]
    EmrProcessing,
    #[serde(rename = "EMR_COMPLETED")]
    EmrCompleted,
    #[serde(rename = "EMR_FAILED")]
    EmrFailed,
    #[serde(rename = "LAMBDA_FAILED")]
    LambdaFailed,
    /// An `EMR_FAILED` run an operator has acknowledged.
    #[serde(rename = "_FAILED")]
    AcknowledgedEmrFailed,
    /// A `LAMBDA_FAILED` run an operator has acknowledged.
    #[serde(rename = "_LAMBDA_FAILED")]
    AcknowledgedLambdaFailed,
}

use JobStatus::*;

/// Every allowed transition, as `(to, allowed previous statuses)`. This is the only place the
/// lifecycle is written down: the job store turns a row into the condition of its write.
///
/// `EMR_COMPLETED` and `EMR_FAILED` may follow `EMR_LAUNCHED` directly because EMR's events are
/// best effort: the RUNNING event that would have made the run `EMR_PROCESSING` can be lost.
pub const TRANSITIONS: &[(JobStatus, &[JobStatus])] = &[
    (LambdaTriggered, &[]),
    (Waiting, &[LambdaTriggered]),
    (Deferred, &[LambdaTriggered, Waiting]),
    (EmrLaunched, &[LambdaTriggered, Waiting]),
    (EmrProcessing, &[EmrLaunched]),
    (EmrCompleted, &[EmrLaunched, EmrProcessing]),
    (EmrFailed, &[EmrLaunched, EmrProcessing]),
    (
        LambdaFailed,
        &[LambdaTriggered, Waiting, EmrLaunched, EmrProcessing],
    ),
    (AcknowledgedEmrFailed, &[EmrFailed]),
    (AcknowledgedLambdaFailed, &[LambdaFailed]),
];

/// What applying a wanted status to a current one means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The write should happen.
    Apply,
    /// The job is already in the wanted status: a repeated event, nothing to do.
    AlreadyThere,
    /// The job has moved past the wanted status: a late event, nothing to do.
    Stale,
}

impl JobStatus {
    pub const ALL: [JobStatus; 10] = [
        LambdaTriggered,
        Waiting,
        Deferred,
        EmrLaunched,
        EmrProcessing,
        EmrCompleted,
        EmrFailed,
        LambdaFailed,
        AcknowledgedEmrFailed,
        AcknowledgedLambdaFailed,
    ];

    /// The name stored in the job table.
    pub fn as_str(self) -> &'static str {
        match self {
            LambdaTriggered => "LAMBDA_TRIGGERED",
            Waiting => "WAITING",
            Deferred => "DEFERRED",
            EmrLaunched => "EMR_LAUNCHED",
            EmrProcessing => "EMR_PROCESSING",
            EmrCompleted => "EMR_COMPLETED",
            EmrFailed => "EMR_FAILED",
            LambdaFailed => "LAMBDA_FAILED",
            AcknowledgedEmrFailed => "_FAILED",
            AcknowledgedLambdaFailed => "_LAMBDA_FAILED",
        }
    }

    /// The statuses a job may be in for a write of `self` to happen.
    pub fn allowed_from(self) -> &'static [JobStatus] {
        TRANSITIONS
            .iter()
            .find(|(to, _)| *to == self)
            .map(|(_, from)| *from)
            .unwrap_or(&[])
    }

    /// How far along the lifecycle a status is; every allowed transition strictly increases it,
    /// which is what makes a late event recognisable as late.
    fn rank(self) -> u8 {
        match self {
            LambdaTriggered => 0,
            Waiting => 1,
            EmrLaunched => 2,
            EmrProcessing => 3,
            Deferred | EmrCompleted | EmrFailed | LambdaFailed => 4,
            AcknowledgedEmrFailed | AcknowledgedLambdaFailed => 5,
        }
    }

    /// A status no event may move a job out of.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Deferred | EmrCompleted | AcknowledgedEmrFailed | AcknowledgedLambdaFailed
        )
    }

    /// A failure an operator has not acknowledged yet: it blocks new runs of its collection.
    pub fn is_unacknowledged_failure(self) -> bool {
        matches!(self, EmrFailed | LambdaFailed)
    }

    /// A run that is in progress and will end by itself: a new run of its collection waits.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            LambdaTriggered | Waiting | EmrLaunched | EmrProcessing
        )
    }

    /// The acknowledged form of a failure, or `None` when `self` is not an unacknowledged
    /// failure.
    pub fn acknowledged(self) -> Option<JobStatus> {
        match self {
            EmrFailed => Some(AcknowledgedEmrFailed),
            LambdaFailed => Some(AcknowledgedLambdaFailed),
            _ => None,
        }
    }

    /// The status an operator's acknowledgement moves this job to, or why it cannot.
    pub fn acknowledge(
        self,
        run: &crate::CorrelationId,
        collection: &crate::Collection,
    ) -> Result<JobStatus, CoreError> {
        self.acknowledged().ok_or_else(|| CoreError::NotFailed {
            run: run.to_string(),
            collection: collection.name(),
            status: self.as_str().to_owned(),
        })
    }

    /// Decides what moving from `self` to `to` means. A repeated or late event is a no-op,
    /// never a regression; anything else outside the table is an error.
    pub fn transition_to(self, to: JobStatus) -> Result<Transition, CoreError> {
        if self == to {
            Ok(Transition::AlreadyThere)
        } else if to.allowed_from().contains(&self) {
            Ok(Transition::Apply)
        } else if self.rank() >= to.rank() {
            Ok(Transition::Stale)
        } else {
            Err(CoreError::TransitionNotAllowed {
                from: self.as_str().to_owned(),
                to: to.as_str().to_owned(),
            })
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| CoreError::UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_match_the_original_table() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            let json = serde_json::to_string(&status).expect("status serialises");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(
            "RUNNING".parse::<JobStatus>().unwrap_err().to_string(),
            "unknown job status `RUNNING`; expected one of LAMBDA_TRIGGERED, WAITING, DEFERRED, \
             EMR_LAUNCHED, EMR_PROCESSING, EMR_COMPLETED, EMR_FAILED, LAMBDA_FAILED, _FAILED, \
             _LAMBDA_FAILED"
        );
    }

    #[test]
    fn every_status_has_one_row_in_the_table() {
        for status in JobStatus::ALL {
            let rows = TRANSITIONS.iter().filter(|(to, _)| *to == status).count();
            assert_eq!(rows, 1, "{status} must appear exactly once");
        }
    }

    #[test]
    fn transitions_are_decided_by_the_table() {
        let cases = [
            (LambdaTriggered, Waiting, Ok(Transition::Apply)),
            (Waiting, EmrLaunched, Ok(Transition::Apply)),
            (EmrLaunched, EmrProcessing, Ok(Transition::Apply)),
            (EmrLaunched, EmrCompleted, Ok(Transition::Apply)),
            (EmrProcessing, EmrCompleted, Ok(Transition::Apply)),
            (EmrProcessing, EmrFailed, Ok(Transition::Apply)),
            (EmrFailed, AcknowledgedEmrFailed, Ok(Transition::Apply)),
            (
                LambdaFailed,
                AcknowledgedLambdaFailed,
                Ok(Transition::Apply),
            ),
            // A repeated event.
            (EmrCompleted, EmrCompleted, Ok(Transition::AlreadyThere)),
            // Late events: a RUNNING after COMPLETED, a RUNNING after a failure.
            (EmrCompleted, EmrProcessing, Ok(Transition::Stale)),
            (EmrFailed, EmrProcessing, Ok(Transition::Stale)),
            (EmrCompleted, EmrFailed, Ok(Transition::Stale)),
            (Deferred, Waiting, Ok(Transition::Stale)),
            // Not late, just wrong.
            (Waiting, EmrCompleted, Err(())),
            (EmrCompleted, AcknowledgedEmrFailed, Err(())),
            (EmrProcessing, AcknowledgedEmrFailed, Err(())),
        ];
        for (from, to, want) in cases {
            let got = from.transition_to(to).map_err(|_| ());
            assert_eq!(got, want, "{from} -> {to}");
        }
    }

    #[test]
    fn a_refused_transition_names_both_statuses() {
        let err = EmrCompleted
            .transition_to(AcknowledgedEmrFailed)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job status cannot go from EMR_COMPLETED to _FAILED"
        );
    }

    fn any_status() -> impl Strategy<Value = JobStatus> {
        proptest::sample::select(JobStatus::ALL.to_vec())
    }

    proptest! {
        /// Applying any sequence of wanted statuses, the way the job store does (write only
        /// on `Apply`), never leaves a terminal status and never moves backwards.
        #[test]
        fn no_sequence_of_events_leads_a_terminal_status_back(
            start in any_status(),
            events in proptest::collection::vec(any_status(), 0..40),
        ) {
            let mut current = start;
            for wanted in events {
                let before = current;
                if let Ok(Transition::Apply) = current.transition_to(wanted) {
                    current = wanted;
                }
                prop_assert!(!before.is_terminal() || current == before,
                    "terminal {before} moved to {current}");
                prop_assert!(current.rank() >= before.rank(),
                    "{before} went back to {current}");
            }
        }
    }
}
