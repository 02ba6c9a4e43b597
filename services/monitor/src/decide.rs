//! What an observation of EMR means for a run: the monitor's decision, pure.
//!
//! EMR's events are best effort: twice, late, out of order or never. So a decision never
//! depends on arrival order, and a cluster that ended is judged by what outlives it: the
//! manifest the extractor writes last (complete by definition), else the step's own state.

/// What was seen, from an event or from asking EMR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The cluster is RUNNING or WAITING.
    ClusterUp,
    /// The cluster is TERMINATED or TERMINATED_WITH_ERRORS.
    ClusterEnded,
    StepRunning,
    StepCompleted,
    /// FAILED, CANCELLED or INTERRUPTED.
    StepFailed,
    /// Anything the run does not move on (STARTING, PENDING, another step...).
    Nothing,
}

impl Observation {
    pub fn of_cluster(state: &str) -> Self {
        match state {
            "RUNNING" | "WAITING" => Observation::ClusterUp,
            "TERMINATED" | "TERMINATED_WITH_ERRORS" => Observation::ClusterEnded,
            _ => Observation::Nothing,
        }
    }

    pub fn of_step(state: &str) -> Self {
        match state {
            "RUNNING" => Observation::StepRunning,
            "COMPLETED" => Observation::StepCompleted,
            "FAILED" | "CANCELLED" | "INTERRUPTED" => Observation::StepFailed,
            _ => Observation::Nothing,
        }
    }
}

/// What is known beside the observation when the cluster has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence {
    /// The run's manifest exists: the extractor finished every collection.
    pub manifest: bool,
    /// The step's state as EMR reports it now (or as the monitor recorded it).
    pub step_completed: bool,
}

/// What to do about the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// EMR_PROCESSING (from EMR_LAUNCHED).
    Processing,
    /// Check the manifest and hand the run to the table builder.
    Complete,
    /// EMR_FAILED and an alert.
    Fail,
    Nothing,
}

pub fn decide(observation: Observation, evidence: Evidence) -> Action {
    match observation {
        Observation::ClusterUp | Observation::StepRunning => Action::Processing,
        Observation::StepCompleted => Action::Complete,
        Observation::StepFailed => Action::Fail,
        Observation::ClusterEnded if evidence.manifest || evidence.step_completed => {
            Action::Complete
        }
        Observation::ClusterEnded => Action::Fail,
        Observation::Nothing => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intraday_core::{JobStatus, Transition};
    use proptest::prelude::*;

    #[test]
    fn decides_as_a_table_of_cases() {
        let none = Evidence::default();
        let manifest = Evidence {
            manifest: true,
            step_completed: false,
        };
        let step_done = Evidence {
            manifest: false,
            step_completed: true,
        };
        let cases = [
            (Observation::of_cluster("RUNNING"), none, Action::Processing),
            (Observation::of_cluster("WAITING"), none, Action::Processing),
            (Observation::of_cluster("STARTING"), none, Action::Nothing),
            (Observation::of_step("PENDING"), none, Action::Nothing),
            (Observation::of_step("RUNNING"), none, Action::Processing),
            (Observation::of_step("COMPLETED"), none, Action::Complete),
            (Observation::of_step("FAILED"), none, Action::Fail),
            (Observation::of_step("CANCELLED"), none, Action::Fail),
            (Observation::of_step("INTERRUPTED"), none, Action::Fail),
            (
                Observation::of_cluster("TERMINATED"),
                manifest,
                Action::Complete,
            ),
            (
                Observation::of_cluster("TERMINATED"),
                step_done,
                Action::Complete,
            ),
            (Observation::of_cluster("TERMINATED"), none, Action::Fail),
            (
                Observation::of_cluster("TERMINATED_WITH_ERRORS"),
                none,
                Action::Fail,
            ),
        ];
        for (observation, evidence, want) in cases {
            assert_eq!(
                decide(observation, evidence),
                want,
                "{observation:?} {evidence:?}"
            );
        }
    }

    /// The job store's behaviour, in miniature: a write happens only when the transition
    /// table says Apply. "Complete" hands the run on (the table builder completes it later).
    fn fold(events: &[Observation], evidence: Evidence) -> (JobStatus, bool) {
        let mut status = JobStatus::EmrLaunched;
        let mut handed_on = false;
        let write = |status: &mut JobStatus, to: JobStatus| {
            if let Ok(Transition::Apply) = status.transition_to(to) {
                *status = to;
            }
        };
        for &event in events {
            match decide(event, evidence) {
                Action::Processing => write(&mut status, JobStatus::EmrProcessing),
                Action::Complete if status != JobStatus::EmrFailed => {
                    write(&mut status, JobStatus::EmrProcessing);
                    handed_on = true;
                }
                Action::Complete => {}
                Action::Fail => write(&mut status, JobStatus::EmrFailed),
                Action::Nothing => {}
            }
        }
        (status, handed_on)
    }

    /// A run's events in the order EMR sends them, and whether the extractor wrote the
    /// manifest (the outcome of the run, which does not depend on the order of events).
    fn sequences() -> Vec<(Vec<Observation>, Evidence)> {
        use Observation::*;
        vec![
            (
                vec![
                    Nothing,
                    ClusterUp,
                    Nothing,
                    StepRunning,
                    StepCompleted,
                    ClusterEnded,
                ],
                Evidence {
                    manifest: true,
                    step_completed: true,
                },
            ),
            (
                vec![Nothing, ClusterUp, StepRunning, StepFailed, ClusterEnded],
                Evidence {
                    manifest: false,
                    step_completed: false,
                },
            ),
            (
                vec![Nothing, ClusterUp, StepRunning, ClusterEnded],
                Evidence {
                    manifest: false,
                    step_completed: false,
                },
            ),
        ]
    }

    proptest! {
        /// Duplicated and shuffled, a run's events end where the ordered sequence ends.
        #[test]
        fn order_and_repetition_do_not_change_the_outcome(
            which in 0usize..3,
            picks in proptest::collection::vec(0usize..6, 1..30),
            seed in any::<u64>(),
        ) {
            let (ordered, evidence) = sequences()[which].clone();
            let want = fold(&ordered, evidence);
            // Every event at least once, plus random repeats, in a shuffled order.
            let mut events = ordered.clone();
            events.extend(picks.iter().map(|i| ordered[i % ordered.len()]));
            let mut state = seed;
            for i in (1..events.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                events.swap(i, (state >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(fold(&events, evidence), want, "{:?}", events);
        }
    }
}
