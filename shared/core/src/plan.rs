//! The scheduler's decision: for each collection of a run, launch, wait or defer. A pure
//! function over what the locks and job items say and the clock; the scheduler carries it
//! out.

use std::time::Duration;

use crate::{Collection, CorrelationId, JobRecord, JobStatus};

/// What the lock of one collection says, read consistently from the job table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// This run holds it already (a redelivered request).
    Ours,
    /// Another run holds it; `status` is that run's job item for this collection, `None` when
    /// the item is gone.
    HeldBy {
        holder: CorrelationId,
        status: Option<JobStatus>,
        /// When the holder's item last changed status (its failure time, for a failed run).
        since_ms: Option<u64>,
    },
    /// No lock, but an item of another run whose status cannot be read (a status this
    /// version does not know, a malformed attribute): it blocks until someone fixes it,
    /// because we cannot tell whether that run is still going or failed.
    Unreadable { run: String, reason: String },
}

/// One item of a collection's history as read from the job table: a job, or the run id and
/// why the item could not be read.
pub type HistoryItem = Result<JobRecord, (String, String)>;

/// What a collection's history says when its lock is free. The original kept no locks: its
/// failed runs block their collections through their items alone, until an operator rewrites
/// `EMR_FAILED` as `_FAILED`. So, lock or no lock, an unacknowledged failure of another run
/// blocks, and so does an item we cannot read. Active items without a lock do not: a run of
/// ours takes the lock before it launches, and the cut-over lets the original's last run end
/// first (`intradayctl migrate check` names any that has not).
pub fn history_blocker(history: &[HistoryItem], run: &CorrelationId) -> LockState {
    for item in history {
        match item {
            Ok(job) if &job.correlation_id == run => {}
            Ok(job) if job.status.is_unacknowledged_failure() => {
                return LockState::HeldBy {
                    holder: job.correlation_id.clone(),
                    status: Some(job.status),
                    since_ms: job.status_changed_at.or(Some(job.triggered_time)),
                };
            }
            Ok(_) => {}
            Err((other, _)) if other == run.as_str() => {}
            Err((other, reason)) => {
                return LockState::Unreadable {
                    run: other.clone(),
                    reason: reason.clone(),
                };
            }
        }
    }
    LockState::Free
}

/// Why a collection's part of a run is deferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferReason {
    /// A failed run of the collection has not been acknowledged.
    UnacknowledgedFailure {
        failed_run: CorrelationId,
        status: JobStatus,
        failed_at_ms: Option<u64>,
    },
    /// An active run held the collection for longer than the run may wait.
    WaitedTooLong {
        holder: CorrelationId,
        waited: Duration,
    },
    /// The collection's watermark is at or past the end of the window: nothing to extract.
    NothingToExtract { start_ms: u64, end_ms: u64 },
    /// An item of another run cannot be read (see [`LockState::Unreadable`]).
    UnreadableItem { run: String, reason: String },
}

/// The decision for one attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunPlan {
    /// Collections to lock and launch now.
    pub launch: Vec<Collection>,
    /// Collections blocked by an active run: the run asks again after `retry_in`.
    pub wait: Vec<Collection>,
    pub retry_in: Option<Duration>,
    /// Collections deferred, with why.
    pub defer: Vec<(Collection, DeferReason)>,
    /// Locks held by runs that ended without releasing them (their item is gone or terminal):
    /// taken over with a condition on the old holder.
    pub take_over: Vec<(Collection, CorrelationId)>,
}

/// How long a run waits for active runs, and how often it asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    pub max_wait: Duration,
    pub step: Duration,
}

impl Default for WaitPolicy {
    /// The original waited about 15 minutes; SQS delays a message at most 15 minutes.
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(15 * 60),
            step: Duration::from_secs(60),
        }
    }
}

/// Decides a run's attempt. While any collection is blocked by an active run and the run
/// has waited less than `policy.max_wait`, nothing launches: one run is one cluster, so it
/// waits for all of its collections together. Once the wait is over, the still-blocked
/// collections are deferred and the rest launch. A collection held by a failed,
/// unacknowledged run is deferred at once and never holds up the others.
pub fn plan_run(
    locks: &[(Collection, LockState)],
    first_requested_ms: u64,
    now_ms: u64,
    policy: WaitPolicy,
) -> RunPlan {
    let waited = Duration::from_millis(now_ms.saturating_sub(first_requested_ms));
    let mut plan = RunPlan::default();
    let mut ready = Vec::new();
    let mut blocked = Vec::new();
    for (collection, lock) in locks {
        match lock {
            LockState::Free | LockState::Ours => ready.push(collection.clone()),
            LockState::Unreadable { run, reason } => plan.defer.push((
                collection.clone(),
                DeferReason::UnreadableItem {
                    run: run.clone(),
                    reason: reason.clone(),
                },
            )),
            LockState::HeldBy {
                holder,
                status: Some(status),
                since_ms,
            } if status.is_unacknowledged_failure() => plan.defer.push((
                collection.clone(),
                DeferReason::UnacknowledgedFailure {
                    failed_run: holder.clone(),
                    status: *status,
                    failed_at_ms: *since_ms,
                },
            )),
            LockState::HeldBy {
                holder,
                status: Some(status),
                ..
            } if status.is_active() => blocked.push((collection.clone(), holder.clone())),
            // The holder finished (or its item is gone) without releasing the lock.
            LockState::HeldBy { holder, .. } => {
                plan.take_over.push((collection.clone(), holder.clone()));
                ready.push(collection.clone());
            }
        }
    }
    if blocked.is_empty() {
        plan.launch = ready;
    } else if waited < policy.max_wait {
        plan.wait = ready
            .into_iter()
            .chain(blocked.into_iter().map(|(c, _)| c))
            .collect();
        plan.retry_in = Some(
            policy
                .step
                .min(policy.max_wait - waited)
                .max(Duration::from_secs(1)),
        );
        plan.take_over.clear();
    } else {
        plan.launch = ready;
        plan.defer.extend(
            blocked
                .into_iter()
                .map(|(c, holder)| (c, DeferReason::WaitedTooLong { holder, waited })),
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> Collection {
        Collection::parse(&format!("db.core.{name}")).expect("valid")
    }

    fn run(id: &str) -> CorrelationId {
        CorrelationId::new(id).expect("valid")
    }

    fn held(id: &str, status: JobStatus) -> LockState {
        LockState::HeldBy {
            holder: run(id),
            status: Some(status),
            since_ms: Some(500),
        }
    }

    const MIN: u64 = 60_000;

    #[test]
    fn decides_launch_wait_and_defer_as_a_table_of_cases() {
        let policy = WaitPolicy::default();
        struct Case {
            name: &'static str,
            locks: Vec<(Collection, LockState)>,
            waited_ms: u64,
            launch: Vec<Collection>,
            wait: Vec<Collection>,
            deferred: Vec<Collection>,
            retry_in: Option<Duration>,
        }
        let cases = vec![
            Case {
                name: "all free: launch all",
                locks: vec![(c("a"), LockState::Free), (c("b"), LockState::Ours)],
                waited_ms: 0,
                launch: vec![c("a"), c("b")],
                wait: vec![],
                deferred: vec![],
                retry_in: None,
            },
            Case {
                name: "one held by an active run: everything waits a step",
                locks: vec![
                    (c("a"), LockState::Free),
                    (c("b"), held("old", JobStatus::EmrProcessing)),
                ],
                waited_ms: 0,
                launch: vec![],
                wait: vec![c("a"), c("b")],
                deferred: vec![],
                retry_in: Some(Duration::from_secs(60)),
            },
            Case {
                name: "the last step is cut to the wait that is left",
                locks: vec![(c("b"), held("old", JobStatus::Waiting))],
                waited_ms: 14 * MIN + 30_000,
                launch: vec![],
                wait: vec![c("b")],
                deferred: vec![],
                retry_in: Some(Duration::from_secs(30)),
            },
            Case {
                name: "waited too long: the blocked one is deferred, the rest launch",
                locks: vec![
                    (c("a"), LockState::Free),
                    (c("b"), held("old", JobStatus::EmrLaunched)),
                ],
                waited_ms: 15 * MIN,
                launch: vec![c("a")],
                wait: vec![],
                deferred: vec![c("b")],
                retry_in: None,
            },
            Case {
                name: "an unacknowledged failure defers at once without holding up the rest",
                locks: vec![
                    (c("a"), LockState::Free),
                    (c("b"), held("bad", JobStatus::EmrFailed)),
                ],
                waited_ms: 0,
                launch: vec![c("a")],
                wait: vec![],
                deferred: vec![c("b")],
                retry_in: None,
            },
            Case {
                name: "a lock left by a finished run is taken over",
                locks: vec![(c("a"), held("done", JobStatus::EmrCompleted))],
                waited_ms: 0,
                launch: vec![c("a")],
                wait: vec![],
                deferred: vec![],
                retry_in: None,
            },
            Case {
                name: "a lock whose holder item is gone is taken over",
                locks: vec![(
                    c("a"),
                    LockState::HeldBy {
                        holder: run("gone"),
                        status: None,
                        since_ms: None,
                    },
                )],
                waited_ms: 0,
                launch: vec![c("a")],
                wait: vec![],
                deferred: vec![],
                retry_in: None,
            },
        ];
        for case in cases {
            let plan = plan_run(&case.locks, 1_000, 1_000 + case.waited_ms, policy);
            assert_eq!(plan.launch, case.launch, "{}", case.name);
            assert_eq!(plan.wait, case.wait, "{}", case.name);
            let deferred: Vec<Collection> = plan.defer.iter().map(|(c, _)| c.clone()).collect();
            assert_eq!(deferred, case.deferred, "{}", case.name);
            assert_eq!(plan.retry_in, case.retry_in, "{}", case.name);
        }
    }

    #[test]
    fn a_deferral_says_which_run_blocked_it() {
        let plan = plan_run(
            &[(c("b"), held("bad", JobStatus::LambdaFailed))],
            0,
            0,
            WaitPolicy::default(),
        );
        assert_eq!(
            plan.defer,
            vec![(
                c("b"),
                DeferReason::UnacknowledgedFailure {
                    failed_run: run("bad"),
                    status: JobStatus::LambdaFailed,
                    failed_at_ms: Some(500)
                }
            )]
        );
        let plan = plan_run(
            &[(c("b"), held("slow", JobStatus::EmrProcessing))],
            0,
            20 * MIN,
            WaitPolicy::default(),
        );
        assert_eq!(
            plan.defer,
            vec![(
                c("b"),
                DeferReason::WaitedTooLong {
                    holder: run("slow"),
                    waited: Duration::from_secs(1200)
                }
            )]
        );
    }

    fn job(id: &str, status: JobStatus) -> HistoryItem {
        let mut job = JobRecord::new(run(id), c("a"), status, 100);
        job.status_changed_at = Some(200);
        Ok(job)
    }

    #[test]
    fn history_blocks_on_another_runs_unacknowledged_failure_or_unreadable_item() {
        let me = run("now");
        let cases: Vec<(&str, Vec<HistoryItem>, LockState)> = vec![
            ("no history", vec![], LockState::Free),
            (
                "completed, deferred and acknowledged runs never block",
                vec![
                    job("a", JobStatus::EmrCompleted),
                    job("b", JobStatus::Deferred),
                    job("c", JobStatus::AcknowledgedEmrFailed),
                    job("d", JobStatus::AcknowledgedLambdaFailed),
                ],
                LockState::Free,
            ),
            (
                "an active item without a lock does not block: the lock decides",
                vec![job("a", JobStatus::EmrProcessing)],
                LockState::Free,
            ),
            (
                "the original's EMR_FAILED blocks",
                vec![
                    job("a", JobStatus::EmrCompleted),
                    job("old", JobStatus::EmrFailed),
                ],
                LockState::HeldBy {
                    holder: run("old"),
                    status: Some(JobStatus::EmrFailed),
                    since_ms: Some(200),
                },
            ),
            (
                "this run's own items never block it",
                vec![
                    job("now", JobStatus::LambdaFailed),
                    Err(("now".into(), "x".into())),
                ],
                LockState::Free,
            ),
            (
                "an item with an unknown status blocks, naming it",
                vec![Err(("old".into(), "unknown job status `RUNNING`".into()))],
                LockState::Unreadable {
                    run: "old".into(),
                    reason: "unknown job status `RUNNING`".into(),
                },
            ),
        ];
        for (name, history, want) in cases {
            assert_eq!(history_blocker(&history, &me), want, "{name}");
        }
    }

    #[test]
    fn an_unreadable_item_defers_its_collection_alone() {
        let plan = plan_run(
            &[
                (
                    c("a"),
                    LockState::Unreadable {
                        run: "old".into(),
                        reason: "why".into(),
                    },
                ),
                (c("b"), LockState::Free),
            ],
            0,
            0,
            WaitPolicy::default(),
        );
        assert_eq!(plan.launch, vec![c("b")]);
        assert_eq!(
            plan.defer,
            vec![(
                c("a"),
                DeferReason::UnreadableItem {
                    run: "old".into(),
                    reason: "why".into()
                }
            )]
        );
    }
}
