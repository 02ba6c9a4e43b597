//! The job store: the original system's DynamoDB table, item for item.
//!
//! Key `CorrelationId` / `Collection`; GSI `byCollection` (`Collection`, `TriggeredTime`).
//! Every status change is a conditional write from the statuses the transition table allows,
//! so a repeated or late event changes nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use intraday_core::{Collection, CorrelationId, HistoryItem, JobRecord, JobStatus, Transition};

use crate::AwsError;
use crate::error::SdkResultExt;

pub const ATTR_CORRELATION_ID: &str = "CorrelationId";
pub const ATTR_COLLECTION: &str = "Collection";
pub const ATTR_STATUS: &str = "JobStatus";
pub const ATTR_TRIGGERED_TIME: &str = "TriggeredTime";
pub const ATTR_DATA_START: &str = "ProcessedDataStart";
pub const ATTR_DATA_END: &str = "ProcessedDataEnd";
pub const ATTR_READY_TIME: &str = "EMRReadyTime";
pub const ATTR_CLUSTER_ID: &str = "EMRClusterId";
pub const ATTR_WINDOW_END: &str = "WindowEnd";
pub const ATTR_STATUS_CHANGED: &str = "StatusChangedTime";
pub const ATTR_BACKFILL: &str = "Backfill";
pub const ATTR_OUTPUT: &str = "OutputLocation";
pub const ATTR_DATABASE: &str = "Database";
pub const ATTR_FORMAT: &str = "OutputFormat";
pub const ATTR_STEP_STATE: &str = "StepState";
pub const INDEX_BY_COLLECTION: &str = "byCollection";
pub const INDEX_BY_CLUSTER: &str = "byCluster";

/// How many times a transition re-reads and re-decides when another writer changed the item
/// between its read and its write.
const TRANSITION_ATTEMPTS: u32 = 3;

pub type Item = HashMap<String, AttributeValue>;

/// A value to set beside a status change.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    S(String),
    N(u64),
}

impl Value {
    fn attribute(&self) -> AttributeValue {
        match self {
            Value::S(s) => AttributeValue::S(s.clone()),
            Value::N(n) => AttributeValue::N(n.to_string()),
        }
    }
}

/// What a transition did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The status changed.
    Applied,
    /// Nothing to do: the job was already in the wanted status, or past it.
    Unchanged { current: JobStatus, why: Transition },
}

/// A condition on a write, with its placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// One action of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Item,
        update: String,
        condition: Option<Condition>,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    },
    Delete {
        key: Item,
        condition: Option<Condition>,
    },
    Check {
        key: Item,
        condition: Condition,
    },
}

impl TxOp {
    /// Creates a job item; fails the transaction if it exists.
    pub fn create_job(job: &JobRecord) -> Self {
        TxOp::Put {
            item: job_to_item(job),
            condition: Some(Condition {
                expression: "attribute_not_exists(#cid)".to_owned(),
                names: HashMap::from([("#cid".to_owned(), ATTR_CORRELATION_ID.to_owned())]),
                values: HashMap::new(),
            }),
        }
    }

    /// Moves a job to `to` from any status the table allows, setting `set` beside it.
    pub fn transition(
        correlation_id: &CorrelationId,
        collection: &Collection,
        to: JobStatus,
        set: &[(&str, Value)],
    ) -> Self {
        let (update, condition, names, values) = transition_parts(to, set);
        TxOp::Update {
            key: job_key(correlation_id, collection),
            update,
            condition: Some(condition),
            names,
            values,
        }
    }

    fn into_sdk(self, table: &str) -> Result<TransactWriteItem, AwsError> {
        let built = |e: aws_sdk_dynamodb::error::BuildError| AwsError::Service {
            operation: "TransactWriteItems",
            code: "BuildError".to_owned(),
            message: e.to_string(),
            retryable: false,
        };
        let item = match self {
            TxOp::Put { item, condition } => {
                let mut put = Put::builder().table_name(table).set_item(Some(item));
                if let Some(c) = condition {
                    put = put
                        .condition_expression(c.expression)
                        .set_expression_attribute_names(non_empty(c.names))
                        .set_expression_attribute_values(non_empty(c.values));
                }
                TransactWriteItem::builder()
                    .put(
                        put.return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(built)?,
                    )
                    .build()
            }
            TxOp::Update {
                key,
                update,
                condition,
                mut names,
                mut values,
            } => {
                let mut op = Update::builder()
                    .table_name(table)
                    .set_key(Some(key))
                    .update_expression(update);
                if let Some(c) = condition {
                    names.extend(c.names);
                    values.extend(c.values);
                    op = op.condition_expression(c.expression);
                }
                TransactWriteItem::builder()
                    .update(
                        op.set_expression_attribute_names(non_empty(names))
                            .set_expression_attribute_values(non_empty(values))
                            .return_values_on_condition_check_failure(
                                ReturnValuesOnConditionCheckFailure::AllOld,
                            )
                            .build()
                            .map_err(built)?,
                    )
                    .build()
            }
            TxOp::Delete { key, condition } => {
                let mut op = Delete::builder().table_name(table).set_key(Some(key));
                if let Some(c) = condition {
                    op = op
                        .condition_expression(c.expression)
                        .set_expression_attribute_names(non_empty(c.names))
                        .set_expression_attribute_values(non_empty(c.values));
                }
                TransactWriteItem::builder()
                    .delete(op.build().map_err(built)?)
                    .build()
            }
            TxOp::Check { key, condition } => TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(table)
                        .set_key(Some(key))
                        .condition_expression(condition.expression)
                        .set_expression_attribute_names(non_empty(condition.names))
                        .set_expression_attribute_values(non_empty(condition.values))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(built)?,
                )
                .build(),
        };
        Ok(item)
    }
}

/// The adapter's clock, for `StatusChangedTime`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn non_empty<K, V>(map: HashMap<K, V>) -> Option<HashMap<K, V>> {
    (!map.is_empty()).then_some(map)
}

type UpdateParts = (
    String,
    Condition,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
);

/// The update expression and condition for a transition: `SET JobStatus = :to, ...` if the
/// item exists and its status is one the table allows before `to`.
fn transition_parts(to: JobStatus, set: &[(&str, Value)]) -> UpdateParts {
    let mut names = HashMap::from([("#status".to_owned(), ATTR_STATUS.to_owned())]);
    let mut values = HashMap::from([(":to".to_owned(), AttributeValue::S(to.as_str().to_owned()))]);
    let mut assignments = vec!["#status = :to".to_owned(), "#changed = :changed".to_owned()];
    names.insert("#changed".to_owned(), ATTR_STATUS_CHANGED.to_owned());
    values.insert(
        ":changed".to_owned(),
        AttributeValue::N(now_ms().to_string()),
    );
    for (i, (name, value)) in set.iter().enumerate() {
        names.insert(format!("#a{i}"), (*name).to_owned());
        values.insert(format!(":a{i}"), value.attribute());
        assignments.push(format!("#a{i} = :a{i}"));
    }
    let from = to.allowed_from();
    let mut condition = Condition {
        expression: String::new(),
        names: HashMap::from([("#cid".to_owned(), ATTR_CORRELATION_ID.to_owned())]),
        values: HashMap::new(),
    };
    let placeholders: Vec<String> = from
        .iter()
        .enumerate()
        .map(|(i, status)| {
            condition.values.insert(
                format!(":f{i}"),
                AttributeValue::S(status.as_str().to_owned()),
            );
            format!(":f{i}")
        })
        .collect();
    condition.expression = if placeholders.is_empty() {
        // Nothing may become this status by an update (LAMBDA_TRIGGERED is only created).
        "attribute_not_exists(#cid) AND attribute_exists(#cid)".to_owned()
    } else {
        format!(
            "attribute_exists(#cid) AND #status IN ({})",
            placeholders.join(", ")
        )
    };
    (
        format!("SET {}", assignments.join(", ")),
        condition,
        names,
        values,
    )
}

pub fn job_key(correlation_id: &CorrelationId, collection: &Collection) -> Item {
    HashMap::from([
        (
            ATTR_CORRELATION_ID.to_owned(),
            AttributeValue::S(correlation_id.as_str().to_owned()),
        ),
        (
            ATTR_COLLECTION.to_owned(),
            AttributeValue::S(collection.job_key()),
        ),
    ])
}

pub fn job_to_item(job: &JobRecord) -> Item {
    let mut item = job_key(&job.correlation_id, &job.collection);
    item.insert(
        ATTR_STATUS.to_owned(),
        AttributeValue::S(job.status.as_str().to_owned()),
    );
    item.insert(
        ATTR_TRIGGERED_TIME.to_owned(),
        AttributeValue::N(job.triggered_time.to_string()),
    );
    for (name, value) in [
        (ATTR_DATA_START, job.processed_data_start),
        (ATTR_DATA_END, job.processed_data_end),
        (ATTR_READY_TIME, job.emr_ready_time),
        (ATTR_WINDOW_END, job.window_end),
        (ATTR_STATUS_CHANGED, job.status_changed_at),
    ] {
        if let Some(v) = value {
            item.insert(name.to_owned(), AttributeValue::N(v.to_string()));
        }
    }
    if let Some(cluster) = &job.emr_cluster_id {
        item.insert(
            ATTR_CLUSTER_ID.to_owned(),
            AttributeValue::S(cluster.clone()),
        );
    }
    if job.backfill {
        item.insert(ATTR_BACKFILL.to_owned(), AttributeValue::Bool(true));
    }
    for (name, value) in [
        (ATTR_OUTPUT, &job.output),
        (ATTR_DATABASE, &job.database),
        (ATTR_FORMAT, &job.format),
        (ATTR_STEP_STATE, &job.step_state),
    ] {
        if let Some(v) = value {
            item.insert(name.to_owned(), AttributeValue::S(v.clone()));
        }
    }
    item
}

/// Reads a job item, tolerating what the original wrote: numbers as N or as S.
pub fn item_to_job(item: &Item) -> Result<JobRecord, AwsError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let cid = text(ATTR_CORRELATION_ID).unwrap_or_default();
    let collection_name = text(ATTR_COLLECTION).unwrap_or_default();
    let malformed = |reason: String| AwsError::MalformedItem {
        correlation_id: cid.clone(),
        collection: collection_name.clone(),
        reason,
    };
    let number = |name: &str| -> Result<Option<u64>, AwsError> {
        match item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) | Some(AttributeValue::S(n)) if n.is_empty() => Ok(None),
            Some(AttributeValue::N(n)) | Some(AttributeValue::S(n)) => n
                .parse::<u64>()
                .or_else(|_| n.parse::<f64>().map(|f| f as u64))
                .map(Some)
                .map_err(|_| malformed(format!("`{name}` is `{n}`, not a number of milliseconds"))),
            Some(_) => Err(malformed(format!("`{name}` is not a number"))),
        }
    };
    let correlation_id = CorrelationId::new(cid.clone()).map_err(|e| malformed(e.to_string()))?;
    let collection = Collection::parse(&collection_name).map_err(|e| malformed(e.to_string()))?;
    let status = text(ATTR_STATUS)
        .ok_or_else(|| malformed(format!("`{ATTR_STATUS}` is missing")))?
        .parse::<JobStatus>()
        .map_err(|e| malformed(e.to_string()))?;
    Ok(JobRecord {
        correlation_id,
        collection,
        status,
        triggered_time: number(ATTR_TRIGGERED_TIME)?.unwrap_or(0),
        processed_data_start: number(ATTR_DATA_START)?,
        processed_data_end: number(ATTR_DATA_END)?,
        emr_ready_time: number(ATTR_READY_TIME)?,
        emr_cluster_id: text(ATTR_CLUSTER_ID),
        window_end: number(ATTR_WINDOW_END)?,
        status_changed_at: number(ATTR_STATUS_CHANGED)?,
        backfill: matches!(item.get(ATTR_BACKFILL), Some(AttributeValue::Bool(true))),
        output: text(ATTR_OUTPUT),
        database: text(ATTR_DATABASE),
        format: text(ATTR_FORMAT),
        step_state: text(ATTR_STEP_STATE),
    })
}

/// The job table.
#[derive(Debug, Clone)]
pub struct JobStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl JobStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes a new job item. Returns `false`, writing nothing, when it exists already (a
    /// redelivered request).
    pub async fn create(&self, job: &JobRecord) -> Result<bool, AwsError> {
        // Repeat: conditional on attribute_not_exists; a repeat finds the item and returns false.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_to_item(job)))
            .condition_expression("attribute_not_exists(#cid)")
            .expression_attribute_names("#cid", ATTR_CORRELATION_ID)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(crate::error::from_sdk("PutItem", e)),
        }
    }

    pub async fn get(
        &self,
        correlation_id: &CorrelationId,
        collection: &Collection,
    ) -> Result<Option<JobRecord>, AwsError> {
        self.item(job_key(correlation_id, collection))
            .await?
            .as_ref()
            .map(item_to_job)
            .transpose()
    }

    /// One item as stored, read consistently: jobs, locks and the attributes a job record
    /// does not model all come through here.
    pub(crate) async fn item(&self, key: Item) -> Result<Option<Item>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .aws("GetItem")?;
        Ok(out.item().cloned())
    }

    /// Every job item of one run, read consistently from the base table.
    pub async fn run(&self, correlation_id: &CorrelationId) -> Result<Vec<JobRecord>, AwsError> {
        let mut jobs = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#cid = :cid")
                .expression_attribute_names("#cid", ATTR_CORRELATION_ID)
                .expression_attribute_values(
                    ":cid",
                    AttributeValue::S(correlation_id.as_str().to_owned()),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .aws("Query")?;
            for item in out.items() {
                if item.contains_key(ATTR_STATUS) {
                    jobs.push(item_to_job(item)?);
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(jobs),
            }
        }
    }

    /// A collection's runs from the `byCollection` index, newest first, read page by page
    /// until `keep_going` returns false for a page. The index is eventually consistent: use
    /// it for history and watermarks, never to decide whether a run may start.
    pub async fn history(
        &self,
        collection: &Collection,
        page_size: i32,
        mut keep_going: impl FnMut(&[JobRecord]) -> bool,
    ) -> Result<Vec<JobRecord>, AwsError> {
        let mut jobs = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (page, next) = self
                .history_page(collection, page_size, start.take())
                .await?;
            let more = keep_going(&page);
            jobs.extend(page);
            match next {
                Some(key) if more => start = Some(key),
                _ => return Ok(jobs),
            }
        }
    }

    /// One page of the `byCollection` index, newest first, and the key of the next page.
    /// The index projects only the status and the data bounds of each item.
    async fn history_page(
        &self,
        collection: &Collection,
        page_size: i32,
        start: Option<Item>,
    ) -> Result<(Vec<JobRecord>, Option<Item>), AwsError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BY_COLLECTION)
            .key_condition_expression("#c = :c")
            .expression_attribute_names("#c", ATTR_COLLECTION)
            .expression_attribute_values(":c", AttributeValue::S(collection.job_key()))
            .scan_index_forward(false)
            .limit(page_size)
            .set_exclusive_start_key(start)
            .send()
            .await
            .aws("Query")?;
        // An item we cannot read (a status this version does not know) is left out here,
        // never a failed page: `open_items` reports it and it blocks its collection.
        let page = out
            .items()
            .iter()
            .filter(|item| item.contains_key(ATTR_STATUS))
            .filter_map(|item| {
                item_to_job(item)
                    .inspect_err(|e| tracing::warn!(error = %e, "skipping an unreadable job item"))
                    .ok()
            })
            .collect();
        let next = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        Ok((page, next))
    }

    /// A collection's items that may block a new run, from the `byCollection` index: every
    /// item whose status is not one that never blocks (completed, deferred, acknowledged),
    /// unknown statuses included. An item that cannot be read comes back as its run id and
    /// why, so one odd item is reported and blocks its collection instead of failing a page.
    /// The original scanned for such items before every launch; this reads one partition.
    pub async fn open_items(&self, collection: &Collection) -> Result<Vec<HistoryItem>, AwsError> {
        let settled = [
            JobStatus::EmrCompleted,
            JobStatus::Deferred,
            JobStatus::AcknowledgedEmrFailed,
            JobStatus::AcknowledgedLambdaFailed,
        ];
        let mut values =
            HashMap::from([(":c".to_owned(), AttributeValue::S(collection.job_key()))]);
        for (i, status) in settled.iter().enumerate() {
            values.insert(
                format!(":s{i}"),
                AttributeValue::S(status.as_str().to_owned()),
            );
        }
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_BY_COLLECTION)
                .key_condition_expression("#c = :c")
                .filter_expression("NOT (#s IN (:s0, :s1, :s2, :s3))")
                .expression_attribute_names("#c", ATTR_COLLECTION)
                .expression_attribute_names("#s", ATTR_STATUS)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .aws("Query")?;
            for item in out.items() {
                items.push(item_to_job(item).map_err(|e| {
                    let run = match item.get(ATTR_CORRELATION_ID) {
                        Some(AttributeValue::S(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let reason = match e {
                        AwsError::MalformedItem { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    (run, reason)
                }));
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Where the collection's next scheduled window starts (see
    /// [`intraday_core::next_window_start`]); reads only as many pages as it needs.
    ///
    /// The index does not project `Backfill`, so each candidate is read whole before it
    /// counts: a backfill never moves the watermark, whatever it recorded.
    pub async fn next_window_start(&self, collection: &Collection) -> Result<u64, AwsError> {
        let mut start: Option<Item> = None;
        loop {
            let (page, next) = self.history_page(collection, 50, start.take()).await?;
            for candidate in page
                .iter()
                .filter(|j| j.status == JobStatus::EmrCompleted && j.processed_data_end.is_some())
            {
                if let Some(full) = self.get(&candidate.correlation_id, collection).await? {
                    let start = intraday_core::next_window_start([&full]);
                    if start > 0 {
                        return Ok(start);
                    }
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(0),
            }
        }
    }

    /// The indexes the services query that the table lacks. A table the original made has
    /// `byCollection` only; the monitor and the reaper also need `byCluster`.
    pub async fn missing_indexes(&self) -> Result<Vec<&'static str>, AwsError> {
        let out = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .aws("DescribeTable")?;
        let present: Vec<&str> = out
            .table()
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.index_name())
            .collect();
        Ok([INDEX_BY_COLLECTION, INDEX_BY_CLUSTER]
            .into_iter()
            .filter(|want| !present.contains(want))
            .collect())
    }

    /// Runs whose items carry `EMRClusterId = cluster_id`, from the sparse `byCluster` index.
    pub async fn by_cluster(
        &self,
        cluster_id: &str,
    ) -> Result<Vec<(CorrelationId, Collection)>, AwsError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_BY_CLUSTER)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", ATTR_CLUSTER_ID)
                .expression_attribute_values(":k", AttributeValue::S(cluster_id.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .aws("Query")?;
            for item in out.items() {
                let job = item_to_job_key(item)?;
                keys.push(job);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(keys),
            }
        }
    }

    /// Sets attributes on an existing job item without changing its status. With
    /// `only_if_absent`, the first attribute must not be set yet; returns whether it wrote
    /// (so a once-only action, such as an alert, is taken once).
    pub async fn set_attributes(
        &self,
        correlation_id: &CorrelationId,
        collection: &Collection,
        set: &[(&str, Value)],
        only_if_absent: bool,
    ) -> Result<bool, AwsError> {
        let mut names = HashMap::from([("#cid".to_owned(), ATTR_CORRELATION_ID.to_owned())]);
        let mut values = HashMap::new();
        let mut assignments = Vec::new();
        for (i, (name, value)) in set.iter().enumerate() {
            names.insert(format!("#a{i}"), (*name).to_owned());
            values.insert(format!(":a{i}"), value.attribute());
            assignments.push(format!("#a{i} = :a{i}"));
        }
        let mut condition = "attribute_exists(#cid)".to_owned();
        if only_if_absent && !set.is_empty() {
            condition.push_str(" AND attribute_not_exists(#a0)");
        }
        // Repeat: SETs the same values again; with only_if_absent, a repeat of our own write
        // (its answer lost) finds the attribute holding exactly our value: that is ours, true.
        let ours = set.first().map(|(_, v)| v.attribute());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(job_key(correlation_id, collection)))
            .update_expression(format!("SET {}", assignments.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(non_empty(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if only_if_absent
                    && e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let current = e
                    .as_service_error()
                    .and_then(|s| match s {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item(),
                        _ => None,
                    })
                    .and_then(|item| set.first().and_then(|(name, _)| item.get(*name)))
                    .cloned();
                Ok(current.is_some() && current == ours)
            }
            Err(e) => Err(crate::error::from_sdk("UpdateItem", e)),
        }
    }

    /// Moves one job to `to`, conditionally on its current status. A repeated or late
    /// change is `Outcome::Unchanged`; a change the table forbids is an error naming both
    /// statuses.
    pub async fn transition(
        &self,
        correlation_id: &CorrelationId,
        collection: &Collection,
        to: JobStatus,
        set: &[(&str, Value)],
    ) -> Result<Outcome, AwsError> {
        let (update, condition, mut names, mut values) = transition_parts(to, set);
        names.extend(condition.names);
        values.extend(condition.values);
        for _ in 0..TRANSITION_ATTEMPTS {
            // Repeat: conditional on the statuses the transition allows; a repeat finds the job in
            // the wanted status (Unchanged).
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(job_key(correlation_id, collection)))
                .update_expression(&update)
                .condition_expression(&condition.expression)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Outcome::Applied),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(crate::error::from_sdk("UpdateItem", e)),
            }
            // The condition failed: decide from what the item says now.
            let current = self.get(correlation_id, collection).await?.ok_or_else(|| {
                AwsError::JobNotFound {
                    correlation_id: correlation_id.to_string(),
                    collection: collection.name(),
                }
            })?;
            match current.status.transition_to(to)? {
                Transition::Apply => continue,
                why => {
                    return Ok(Outcome::Unchanged {
                        current: current.status,
                        why,
                    });
                }
            }
        }
        Err(AwsError::Contended {
            what: format!("job {correlation_id} / {collection}"),
            attempts: TRANSITION_ATTEMPTS,
        })
    }

    /// Runs up to 100 actions all-or-nothing. A failed condition cancels every action and
    /// reports, per action, why.
    pub async fn transact(&self, ops: Vec<TxOp>, token: Option<&str>) -> Result<(), AwsError> {
        let items = ops
            .into_iter()
            .map(|op| op.into_sdk(&self.table))
            .collect::<Result<Vec<_>, _>>()?;
        // Repeat: a caller that passes a token gets DynamoDB's idempotency (a repeat within 10
        // minutes is answered as the first); every action is conditional, and on
        // TransactionCancelled the callers re-read and decide.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(token.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancel)) = e.as_service_error() {
                    let reasons = cancel
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                        .collect();
                    return Err(AwsError::TransactionCancelled { reasons });
                }
                Err(crate::error::from_sdk("TransactWriteItems", e))
            }
        }
    }
}

fn item_to_job_key(item: &Item) -> Result<(CorrelationId, Collection), AwsError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    let (cid, collection) = (text(ATTR_CORRELATION_ID), text(ATTR_COLLECTION));
    let malformed = |reason: String| AwsError::MalformedItem {
        correlation_id: cid.clone(),
        collection: collection.clone(),
        reason,
    };
    Ok((
        CorrelationId::new(cid.clone()).map_err(|e| malformed(e.to_string()))?,
        Collection::parse(&collection).map_err(|e| malformed(e.to_string()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_is_conditional_on_the_statuses_the_table_allows() {
        let (update, condition, names, values) =
            transition_parts(JobStatus::EmrCompleted, &[(ATTR_DATA_END, Value::N(42))]);
        assert_eq!(update, "SET #status = :to, #changed = :changed, #a0 = :a0");
        assert_eq!(
            condition.expression,
            "attribute_exists(#cid) AND #status IN (:f0, :f1)"
        );
        assert_eq!(
            condition.values[":f0"],
            AttributeValue::S("EMR_LAUNCHED".to_owned())
        );
        assert_eq!(
            condition.values[":f1"],
            AttributeValue::S("EMR_PROCESSING".to_owned())
        );
        assert_eq!(names["#a0"], ATTR_DATA_END);
        assert_eq!(values[":a0"], AttributeValue::N("42".to_owned()));
    }

    #[test]
    fn items_round_trip_and_tolerate_the_original_number_forms() {
        let mut job = JobRecord::new(
            CorrelationId::new("run-1").expect("id"),
            Collection::parse("db.core.claimant").expect("collection"),
            JobStatus::EmrCompleted,
            1_710_153_000_000,
        );
        job.processed_data_end = Some(1_710_152_991_234);
        job.emr_cluster_id = Some("j-ABC".to_owned());
        job.window_end = Some(1_710_153_000_000);
        job.status_changed_at = Some(1_710_153_001_000);
        job.backfill = true;
        job.output = Some("s3://bucket/data/".to_owned());
        job.database = Some("intraday".to_owned());
        job.format = Some("parquet".to_owned());
        job.step_state = Some("RUNNING".to_owned());
        let mut item = job_to_item(&job);
        assert_eq!(item_to_job(&item).expect("reads back"), job);

        item.insert(
            ATTR_DATA_END.to_owned(),
            AttributeValue::S("1710152991234".to_owned()),
        );
        item.insert(ATTR_DATA_START.to_owned(), AttributeValue::S(String::new()));
        let read = item_to_job(&item).expect("tolerant");
        assert_eq!(read.processed_data_end, Some(1_710_152_991_234));
        assert_eq!(read.processed_data_start, None);

        item.insert(
            ATTR_STATUS.to_owned(),
            AttributeValue::S("RUNNING".to_owned()),
        );
        let err = item_to_job(&item).unwrap_err().to_string();
        assert!(err.starts_with("job item for run `run-1`, collection `core:claimant` is malformed: unknown job status `RUNNING`"), "{err}");
    }
}
