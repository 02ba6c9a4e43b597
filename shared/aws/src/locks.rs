//! Per-collection locks. They live in the job table as items with the reserved
//! `CorrelationId` `#lock` (never a valid run id) and the collection as sort key. They carry
//! no `JobStatus` and no `TriggeredTime`, so the original's readers, which look at job
//! statuses, and the `byCollection` index, which needs `TriggeredTime`, never see them.
//!
//! A lock is taken in the same transaction that launches a run's collections, and released
//! in the one that completes them (or by an operator's acknowledgement of a failure), so
//! "is this collection busy?" is always a strongly consistent read of one item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use intraday_core::{Collection, CorrelationId, JobStatus, LockState};

use crate::jobs::{ATTR_COLLECTION, ATTR_CORRELATION_ID, Item, now_ms};
use crate::{AwsError, Condition, JobStore, TxOp, Value};

/// The reserved partition key of lock items.
pub const LOCK_PARTITION: &str = "#lock";
pub const ATTR_HOLDER: &str = "Holder";
pub const ATTR_HELD_SINCE: &str = "HeldSince";
pub const ATTR_ACK_BY: &str = "AcknowledgedBy";
pub const ATTR_ACK_AT: &str = "AcknowledgedAt";
pub const ATTR_ACK_REASON: &str = "Reason";
/// The AWS identity (ARN) whose credentials acknowledged, beside the person's name.
pub const ATTR_ACK_ARN: &str = "AcknowledgedByArn";

/// Who acknowledged a failed run, when and why, as recorded on its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub by: Option<String>,
    pub by_arn: Option<String>,
    pub at_ms: Option<u64>,
    pub reason: Option<String>,
}

fn lock_key(collection: &Collection) -> Item {
    HashMap::from([
        (
            ATTR_CORRELATION_ID.to_owned(),
            AttributeValue::S(LOCK_PARTITION.to_owned()),
        ),
        (
            ATTR_COLLECTION.to_owned(),
            AttributeValue::S(collection.job_key()),
        ),
    ])
}

impl TxOp {
    /// Takes a collection's lock for `holder`: it must be free or held by `holder` already
    /// (a redelivery), or, to take over a lock a finished run left, held by `previous`.
    pub fn take_lock(
        collection: &Collection,
        holder: &CorrelationId,
        previous: Option<&CorrelationId>,
    ) -> Self {
        let mut item = lock_key(collection);
        item.insert(
            ATTR_HOLDER.to_owned(),
            AttributeValue::S(holder.to_string()),
        );
        item.insert(
            ATTR_HELD_SINCE.to_owned(),
            AttributeValue::N(now_ms().to_string()),
        );
        let mut values = HashMap::from([(":me".to_owned(), AttributeValue::S(holder.to_string()))]);
        let mut expression = "attribute_not_exists(#cid) OR #holder = :me".to_owned();
        if let Some(previous) = previous {
            values.insert(
                ":previous".to_owned(),
                AttributeValue::S(previous.to_string()),
            );
            expression.push_str(" OR #holder = :previous");
        }
        TxOp::Put {
            item,
            condition: Some(Condition {
                expression,
                names: HashMap::from([
                    ("#cid".to_owned(), ATTR_CORRELATION_ID.to_owned()),
                    ("#holder".to_owned(), ATTR_HOLDER.to_owned()),
                ]),
                values,
            }),
        }
    }

    /// Releases a collection's lock, only if `holder` holds it.
    pub fn release_lock(collection: &Collection, holder: &CorrelationId) -> Self {
        TxOp::Delete {
            key: lock_key(collection),
            condition: Some(Condition {
                expression: "#holder = :me".to_owned(),
                names: HashMap::from([("#holder".to_owned(), ATTR_HOLDER.to_owned())]),
                values: HashMap::from([(":me".to_owned(), AttributeValue::S(holder.to_string()))]),
            }),
        }
    }
}

impl JobStore {
    /// Who holds a collection's lock, read consistently: `(holder, held since ms)`.
    pub async fn lock_holder(
        &self,
        collection: &Collection,
    ) -> Result<Option<(CorrelationId, u64)>, AwsError> {
        let Some(item) = self.item(lock_key(collection)).await? else {
            return Ok(None);
        };
        let holder = match item.get(ATTR_HOLDER) {
            Some(AttributeValue::S(h)) => h.clone(),
            _ => return Ok(None),
        };
        let since = match item.get(ATTR_HELD_SINCE) {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        let holder = CorrelationId::new(holder.clone()).map_err(|e| AwsError::MalformedItem {
            correlation_id: LOCK_PARTITION.to_owned(),
            collection: collection.name(),
            reason: format!("`{ATTR_HOLDER}` is not a run id: {e}"),
        })?;
        Ok(Some((holder, since)))
    }

    /// What a collection's lock means for `run`: free, ours, or held by another run whose
    /// item for the collection has the given status.
    pub async fn lock_state(
        &self,
        collection: &Collection,
        run: &CorrelationId,
    ) -> Result<LockState, AwsError> {
        Ok(match self.lock_holder(collection).await? {
            None => LockState::Free,
            Some((holder, _)) if &holder == run => LockState::Ours,
            Some((holder, since)) => {
                let item = self.get(&holder, collection).await?;
                LockState::HeldBy {
                    status: item.as_ref().map(|j| j.status),
                    since_ms: item.and_then(|j| j.status_changed_at).or(Some(since)),
                    holder,
                }
            }
        })
    }

    /// An operator's acknowledgement of a failed run: `EMR_FAILED` becomes `_FAILED`
    /// (`LAMBDA_FAILED` becomes `_LAMBDA_FAILED`) with who, when and why, and the run's lock
    /// on the collection is released, in one transaction. Acknowledging anything else is an
    /// error naming its status.
    pub async fn acknowledge(
        &self,
        run: &CorrelationId,
        collection: &Collection,
        by: &str,
        by_arn: Option<&str>,
        reason: &str,
    ) -> Result<JobStatus, AwsError> {
        let job = self
            .get(run, collection)
            .await?
            .ok_or_else(|| AwsError::JobNotFound {
                correlation_id: run.to_string(),
                collection: collection.name(),
            })?;
        let to = job.status.acknowledge(run, collection)?;
        let mut set = vec![
            (ATTR_ACK_BY, Value::S(by.to_owned())),
            (ATTR_ACK_AT, Value::N(now_ms())),
            (ATTR_ACK_REASON, Value::S(reason.to_owned())),
        ];
        if let Some(arn) = by_arn.filter(|a| !a.is_empty()) {
            set.push((ATTR_ACK_ARN, Value::S(arn.to_owned())));
        }
        let mut ops = vec![TxOp::transition(run, collection, to, &set)];
        if matches!(self.lock_holder(collection).await?, Some((holder, _)) if &holder == run) {
            ops.push(TxOp::release_lock(collection, run));
        }
        match self.transact(ops, None).await {
            Ok(()) => Ok(to),
            // Someone acknowledged it (or changed it) in between: report what it is now.
            Err(AwsError::TransactionCancelled { .. }) => {
                let now = self.get(run, collection).await?.map(|j| j.status);
                match now {
                    Some(status) if status == to => Ok(to),
                    Some(status) => Err(status.acknowledge(run, collection).err().map_or(
                        AwsError::Contended {
                            what: format!("job {run} / {collection}"),
                            attempts: 1,
                        },
                        AwsError::Domain,
                    )),
                    None => Err(AwsError::JobNotFound {
                        correlation_id: run.to_string(),
                        collection: collection.name(),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The acknowledgement recorded on a run's item, if it has one.
    pub async fn acknowledgement(
        &self,
        run: &CorrelationId,
        collection: &Collection,
    ) -> Result<Option<Acknowledgement>, AwsError> {
        let Some(item) = self.item(crate::jobs::job_key(run, collection)).await? else {
            return Ok(None);
        };
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let ack = Acknowledgement {
            by: text(ATTR_ACK_BY),
            by_arn: text(ATTR_ACK_ARN),
            at_ms: match item.get(ATTR_ACK_AT) {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
            reason: text(ATTR_ACK_REASON),
        };
        Ok((ack.by.is_some() || ack.at_ms.is_some()).then_some(ack))
    }
}
