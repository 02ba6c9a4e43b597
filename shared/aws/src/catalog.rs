//! The Glue Data Catalog: databases, external tables, their partitions and views.
//!
//! Glue has no idempotency token on any catalog call, so every write here is "create, and on
//! `AlreadyExistsException` reconcile":
//!
//! - `UpdateTable` replaces the whole `TableInput`; whatever is left out is dropped. An update
//!   therefore sends the complete definition, and keeps what other tools added that this
//!   adapter does not manage (table parameters such as Hive's statistics, the description,
//!   the owner).
//! - An update is sent only when the stored definition differs from the wanted one: each
//!   `UpdateTable` archives a table version, and a redelivered message must change nothing.
//! - `BatchCreatePartition` takes at most [`MAX_PARTITION_BATCH`] partitions and reports
//!   failures per partition with HTTP 200. A partition that already exists at the same
//!   location is what a retry looks like, so it counts as done; one that exists elsewhere is
//!   reported, never silently moved.
//!
//! The specs are plain data so a service builds and tests them without AWS types.

use std::collections::BTreeMap;

use aws_sdk_glue::error::BuildError;
use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, Table,
    TableInput,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::AwsError;
use crate::error::from_sdk;

/// `BatchCreatePartition` takes at most 100 partitions per call; moto does not enforce it.
pub const MAX_PARTITION_BATCH: usize = 100;

/// `TableType` of a table over files that Glue does not own.
pub const EXTERNAL_TABLE: &str = "EXTERNAL_TABLE";
/// `TableType` of a view.
pub const VIRTUAL_VIEW: &str = "VIRTUAL_VIEW";

/// Glue error codes that mean "try again later" beside throttling and 5xx, which the shared
/// error mapping already recognises: a lost race with another writer, a timeout, a resource
/// being set up.
const GLUE_RETRYABLE: &[&str] = &[
    "ConcurrentModificationException",
    "OperationTimeoutException",
    "ResourceNotReadyException",
    "FederationSourceRetryableException",
    "InternalServiceException",
    "ThrottlingException",
];

/// One column: its name and its Hive type (`string`, `bigint`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub hive_type: String,
}

impl Column {
    pub fn new(name: impl Into<String>, hive_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hive_type: hive_type.into(),
        }
    }
}

/// How a table's files are read: Hive's input and output formats and the SerDe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub input_format: String,
    pub output_format: String,
    pub serde_library: String,
    pub serde_parameters: BTreeMap<String, String>,
    /// Whether the files are compressed as a whole (gzip text), as Glue's crawlers record it.
    pub compressed: bool,
}

/// An external table over an S3 prefix, partitioned by `partition_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Lower case: Glue folds names for Hive.
    pub name: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// `s3://…/` of the table; each partition carries its own location.
    pub location: String,
    pub storage: Storage,
    /// Table parameters (`EXTERNAL`, `classification`, ...).
    pub parameters: BTreeMap<String, String>,
}

/// One partition of a table: its values, in the order of the table's partition keys (Glue
/// attaches them by position), and its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub values: Vec<String>,
    pub location: String,
}

/// A view: its columns (Hive types) and its text in whichever encoding its readers expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub original_text: String,
    pub expanded_text: String,
    pub parameters: BTreeMap<String, String>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The catalog already held this definition; nothing was written.
    Unchanged,
}

/// A table or view as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub table_type: Option<String>,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub location: Option<String>,
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    pub serde_library: Option<String>,
    pub serde_parameters: BTreeMap<String, String>,
    pub compressed: bool,
    pub parameters: BTreeMap<String, String>,
    pub view_original_text: Option<String>,
    pub view_expanded_text: Option<String>,
    pub version_id: Option<String>,
    /// Epoch ms of the last `UpdateTable`; absent for a table never updated.
    pub update_time_ms: Option<i64>,
}

/// A partition as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub values: Vec<String>,
    pub location: Option<String>,
    pub columns: Vec<Column>,
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    pub serde_library: Option<String>,
    pub creation_time_ms: Option<i64>,
}

/// One partition `BatchCreatePartition` did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFailure {
    pub values: Vec<String>,
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// What `add_partitions` did, partition by partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionReport {
    pub created: usize,
    /// Already registered at the same location: a retry of an earlier attempt.
    pub existing: usize,
    pub failed: Vec<PartitionFailure>,
}

/// Splits partitions into `BatchCreatePartition`-sized batches.
pub fn partition_batches(partitions: &[PartitionSpec]) -> impl Iterator<Item = &[PartitionSpec]> {
    partitions.chunks(MAX_PARTITION_BATCH)
}

/// The definition an upsert wants, table or view alike, in the shape it is compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Definition {
    name: String,
    table_type: &'static str,
    columns: Vec<Column>,
    partition_keys: Vec<Column>,
    location: Option<String>,
    storage: Option<Storage>,
    parameters: BTreeMap<String, String>,
    /// Table parameters this adapter owns: a stored one missing from `parameters` is removed.
    /// Every other stored parameter belongs to someone else and is kept.
    managed_parameters: &'static [&'static str],
    view_original_text: Option<String>,
    view_expanded_text: Option<String>,
}

const TABLE_PARAMETERS: &[&str] = &[
    "EXTERNAL",
    "classification",
    "compressionType",
    "skip.header.line.count",
];
const VIEW_PARAMETERS: &[&str] = &["presto_view", "comment"];

impl From<&TableSpec> for Definition {
    fn from(spec: &TableSpec) -> Self {
        Self {
            name: spec.name.clone(),
            table_type: EXTERNAL_TABLE,
            columns: spec.columns.clone(),
            partition_keys: spec.partition_keys.clone(),
            location: Some(spec.location.clone()),
            storage: Some(spec.storage.clone()),
            parameters: spec.parameters.clone(),
            managed_parameters: TABLE_PARAMETERS,
            view_original_text: None,
            view_expanded_text: None,
        }
    }
}

impl From<&ViewSpec> for Definition {
    fn from(spec: &ViewSpec) -> Self {
        Self {
            name: spec.name.clone(),
            table_type: VIRTUAL_VIEW,
            columns: spec.columns.clone(),
            partition_keys: Vec::new(),
            location: None,
            storage: None,
            parameters: spec.parameters.clone(),
            managed_parameters: VIEW_PARAMETERS,
            view_original_text: Some(spec.original_text.clone()),
            view_expanded_text: Some(spec.expanded_text.clone()),
        }
    }
}

impl Definition {
    /// True when the catalog's copy already says what this definition says. Glue fills in
    /// empty strings and defaults for fields never sent, so absent and empty compare equal.
    fn matches(&self, current: &TableInfo) -> bool {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let storage_matches = match &self.storage {
            Some(s) => {
                text(&current.input_format).as_deref() == Some(s.input_format.as_str())
                    && text(&current.output_format).as_deref() == Some(s.output_format.as_str())
                    && text(&current.serde_library).as_deref() == Some(s.serde_library.as_str())
                    && current.serde_parameters == s.serde_parameters
                    && current.compressed == s.compressed
            }
            None => {
                text(&current.input_format).is_none()
                    && text(&current.output_format).is_none()
                    && text(&current.serde_library).is_none()
                    && current.serde_parameters.is_empty()
            }
        };
        let parameters_match =
            self.parameters
                .iter()
                .all(|(k, v)| current.parameters.get(k) == Some(v))
                && self.managed_parameters.iter().all(|k| {
                    self.parameters.contains_key(*k) || !current.parameters.contains_key(*k)
                });
        current.table_type.as_deref() == Some(self.table_type)
            && current.columns == self.columns
            && current.partition_keys == self.partition_keys
            && text(&current.location) == self.location
            && storage_matches
            && parameters_match
            && text(&current.view_original_text) == self.view_original_text
            && text(&current.view_expanded_text) == self.view_expanded_text
    }

    /// The complete `TableInput`. With `current`, what other tools stored and this
    /// definition does not manage is carried over, since `UpdateTable` drops what it is not
    /// sent.
    fn input(&self, current: Option<&Table>) -> Result<TableInput, AwsError> {
        let mut parameters: BTreeMap<String, String> = current
            .and_then(Table::parameters)
            .map(|p| {
                p.iter()
                    .filter(|(k, _)| !self.managed_parameters.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        parameters.extend(self.parameters.clone());
        let mut sd = StorageDescriptor::builder()
            .set_columns(Some(glue_columns(&self.columns, "UpdateTable")?))
            .set_location(self.location.clone());
        if let Some(storage) = &self.storage {
            sd = with_storage(sd, storage);
        }
        let mut input = TableInput::builder()
            .name(&self.name)
            .table_type(self.table_type)
            .storage_descriptor(sd.build())
            // Sent even when empty: Athena wants `PartitionKeys: []` rather than none.
            .set_partition_keys(Some(glue_columns(&self.partition_keys, "UpdateTable")?))
            .set_parameters(Some(parameters.into_iter().collect()))
            .set_view_original_text(self.view_original_text.clone())
            .set_view_expanded_text(self.view_expanded_text.clone());
        if let Some(current) = current {
            input = input
                .set_description(current.description().map(str::to_owned))
                .set_owner(current.owner().map(str::to_owned))
                .retention(current.retention())
                .set_target_table(current.target_table().cloned());
        }
        input.build().map_err(build_error("CreateTable"))
    }
}

fn with_storage(
    sd: aws_sdk_glue::types::builders::StorageDescriptorBuilder,
    storage: &Storage,
) -> aws_sdk_glue::types::builders::StorageDescriptorBuilder {
    sd.input_format(&storage.input_format)
        .output_format(&storage.output_format)
        .compressed(storage.compressed)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(&storage.serde_library)
                .set_parameters(Some(
                    storage
                        .serde_parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
                .build(),
        )
}

fn glue_columns(columns: &[Column], operation: &'static str) -> Result<Vec<GlueColumn>, AwsError> {
    columns
        .iter()
        .map(|c| {
            GlueColumn::builder()
                .name(&c.name)
                .r#type(&c.hive_type)
                .build()
                .map_err(build_error(operation))
        })
        .collect()
}

fn columns_of(columns: &[GlueColumn]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column::new(c.name(), c.r#type().unwrap_or_default()))
        .collect()
}

fn sorted(map: Option<&std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn table_info(table: &Table) -> TableInfo {
    let sd = table.storage_descriptor();
    let serde = sd.and_then(StorageDescriptor::serde_info);
    TableInfo {
        name: table.name().to_owned(),
        table_type: table.table_type().map(str::to_owned),
        columns: sd.map(|s| columns_of(s.columns())).unwrap_or_default(),
        partition_keys: columns_of(table.partition_keys()),
        location: sd.and_then(StorageDescriptor::location).map(str::to_owned),
        input_format: sd
            .and_then(StorageDescriptor::input_format)
            .map(str::to_owned),
        output_format: sd
            .and_then(StorageDescriptor::output_format)
            .map(str::to_owned),
        serde_library: serde
            .and_then(SerDeInfo::serialization_library)
            .map(str::to_owned),
        serde_parameters: sorted(serde.and_then(SerDeInfo::parameters)),
        compressed: sd.is_some_and(StorageDescriptor::compressed),
        parameters: sorted(table.parameters()),
        view_original_text: table.view_original_text().map(str::to_owned),
        view_expanded_text: table.view_expanded_text().map(str::to_owned),
        version_id: table.version_id().map(str::to_owned),
        update_time_ms: table.update_time().and_then(|t| t.to_millis().ok()),
    }
}

fn build_error(operation: &'static str) -> impl Fn(BuildError) -> AwsError {
    move |e| AwsError::Service {
        operation,
        code: "BuildError".to_owned(),
        message: e.to_string(),
        retryable: false,
    }
}

/// The shared mapping, plus Glue's own "try again" codes.
fn glue_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match from_sdk(operation, err) {
        AwsError::Service {
            operation,
            code,
            message,
            retryable,
        } => AwsError::Service {
            retryable: retryable || GLUE_RETRYABLE.contains(&code.as_str()),
            operation,
            code,
            message,
        },
        other => other,
    }
}

/// Locations compare without their trailing `/`: Glue and Hive keep either form.
fn same_location(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The Glue Data Catalog of the account and region of the client.
#[derive(Debug, Clone)]
pub struct Catalog {
    client: aws_sdk_glue::Client,
}

impl Catalog {
    pub fn new(client: aws_sdk_glue::Client) -> Self {
        Self { client }
    }

    /// Creates the database unless it exists. Returns whether it was created.
    pub async fn ensure_database(&self, name: &str) -> Result<bool, AwsError> {
        let input = DatabaseInput::builder()
            .name(name)
            .build()
            .map_err(build_error("CreateDatabase"))?;
        // Repeat: AlreadyExistsException counts as done.
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error("CreateDatabase", e)),
        }
    }

    pub async fn database_exists(&self, name: &str) -> Result<bool, AwsError> {
        match self.client.get_database().name(name).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error("GetDatabase", e)),
        }
    }

    /// Creates the external table, or brings an existing one to `spec`.
    pub async fn upsert_table(
        &self,
        database: &str,
        spec: &TableSpec,
    ) -> Result<Upserted, AwsError> {
        self.upsert(database, &Definition::from(spec)).await
    }

    /// Creates the view, or brings an existing one to `spec`.
    pub async fn upsert_view(&self, database: &str, spec: &ViewSpec) -> Result<Upserted, AwsError> {
        self.upsert(database, &Definition::from(spec)).await
    }

    async fn upsert(&self, database: &str, wanted: &Definition) -> Result<Upserted, AwsError> {
        // Repeat: AlreadyExistsException leads to compare-then-update, never a second table.
        let created = self
            .client
            .create_table()
            .database_name(database)
            .table_input(wanted.input(None)?)
            .send()
            .await;
        match created {
            Ok(_) => return Ok(Upserted::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => return Err(glue_error("CreateTable", e)),
        }
        let Some(current) = self.get_raw_table(database, &wanted.name).await? else {
            // Deleted between the two calls: the next attempt creates it.
            return Err(AwsError::Service {
                operation: "GetTable",
                code: "EntityNotFoundException".to_owned(),
                message: format!(
                    "table {database}.{} existed a moment ago and is gone",
                    wanted.name
                ),
                retryable: true,
            });
        };
        if wanted.matches(&table_info(&current)) {
            return Ok(Upserted::Unchanged);
        }
        // `VersionId` makes the update conditional on the version just read: a concurrent
        // writer makes it fail with ConcurrentModificationException (retryable) instead of
        // one update silently overwriting the other.
        // Repeat: conditional on VersionId; a repeat after success finds the definition equal or
        // the version moved on.
        self.client
            .update_table()
            .database_name(database)
            .table_input(wanted.input(Some(&current))?)
            .set_version_id(current.version_id().map(str::to_owned))
            .send()
            .await
            .map_err(|e| glue_error("UpdateTable", e))?;
        Ok(Upserted::Updated)
    }

    async fn get_raw_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        match self
            .client
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(glue_error("GetTable", e)),
        }
    }

    /// A table or view, or `None` when it (or its database) does not exist.
    pub async fn get_table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<TableInfo>, AwsError> {
        Ok(self
            .get_raw_table(database, name)
            .await?
            .map(|t| table_info(&t)))
    }

    /// Registers partitions of `table`, each with the table's storage (columns, formats,
    /// SerDe) and its own location, so a partition keeps reading correctly even if the
    /// table's format changes later. Partitions that exist at the same location count as
    /// done; every other refusal is in the report's `failed`.
    pub async fn add_partitions(
        &self,
        database: &str,
        table: &TableSpec,
        partitions: &[PartitionSpec],
    ) -> Result<PartitionReport, AwsError> {
        let mut report = PartitionReport::default();
        let columns = glue_columns(&table.columns, "BatchCreatePartition")?;
        for batch in partition_batches(partitions) {
            let inputs = batch
                .iter()
                .map(|p| {
                    let sd = StorageDescriptor::builder()
                        .set_columns(Some(columns.clone()))
                        .location(&p.location);
                    PartitionInput::builder()
                        .set_values(Some(p.values.clone()))
                        .storage_descriptor(with_storage(sd, &table.storage).build())
                        .build()
                })
                .collect();
            // Repeat: a partition already registered at the same folder counts as done.
            let out = self
                .client
                .batch_create_partition()
                .database_name(database)
                .table_name(&table.name)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| glue_error("BatchCreatePartition", e))?;
            report.created += batch.len() - out.errors().len();
            for error in out.errors() {
                let values = error.partition_values().to_vec();
                let code = error
                    .error_detail()
                    .and_then(|d| d.error_code())
                    .unwrap_or("Unknown")
                    .to_owned();
                let message = error
                    .error_detail()
                    .and_then(|d| d.error_message())
                    .unwrap_or_default()
                    .to_owned();
                if code == "AlreadyExistsException" {
                    let wanted = batch
                        .iter()
                        .find(|p| p.values == values)
                        .map(|p| p.location.as_str())
                        .unwrap_or_default();
                    match self.get_partition(database, &table.name, &values).await? {
                        Some(found)
                            if found
                                .location
                                .as_deref()
                                .is_some_and(|l| same_location(l, wanted)) =>
                        {
                            report.existing += 1;
                        }
                        Some(found) => report.failed.push(PartitionFailure {
                            message: format!(
                                "the partition is registered at {}, not at {wanted}",
                                found.location.as_deref().unwrap_or("(no location)")
                            ),
                            values,
                            code,
                            retryable: false,
                        }),
                        // Dropped between the two calls: worth another attempt.
                        None => report.failed.push(PartitionFailure {
                            values,
                            code,
                            message: "reported as existing, then not found".to_owned(),
                            retryable: true,
                        }),
                    }
                } else {
                    report.failed.push(PartitionFailure {
                        retryable: GLUE_RETRYABLE.contains(&code.as_str()),
                        values,
                        code,
                        message,
                    });
                }
            }
        }
        Ok(report)
    }

    /// One partition by its values, or `None`.
    pub async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Option<PartitionInfo>, AwsError> {
        let out = match self
            .client
            .get_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_values(Some(values.to_vec()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(glue_error("GetPartition", e)),
        };
        Ok(out.partition().map(|p| {
            let sd = p.storage_descriptor();
            PartitionInfo {
                values: p.values().to_vec(),
                location: sd.and_then(StorageDescriptor::location).map(str::to_owned),
                columns: sd.map(|s| columns_of(s.columns())).unwrap_or_default(),
                input_format: sd
                    .and_then(StorageDescriptor::input_format)
                    .map(str::to_owned),
                output_format: sd
                    .and_then(StorageDescriptor::output_format)
                    .map(str::to_owned),
                serde_library: sd
                    .and_then(StorageDescriptor::serde_info)
                    .and_then(SerDeInfo::serialization_library)
                    .map(str::to_owned),
                creation_time_ms: p.creation_time().and_then(|t| t.to_millis().ok()),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> Storage {
        Storage {
            input_format: "in".to_owned(),
            output_format: "out".to_owned(),
            serde_library: "serde".to_owned(),
            serde_parameters: BTreeMap::from([("serialization.format".to_owned(), "1".to_owned())]),
            compressed: false,
        }
    }

    fn table() -> TableSpec {
        TableSpec {
            name: "core_claimant".to_owned(),
            columns: vec![Column::new("id", "string"), Column::new("record", "string")],
            partition_keys: vec![Column::new("run", "string")],
            location: "s3://bucket/data/core_claimant/".to_owned(),
            storage: storage(),
            parameters: BTreeMap::from([
                ("EXTERNAL".to_owned(), "TRUE".to_owned()),
                ("classification".to_owned(), "parquet".to_owned()),
            ]),
        }
    }

    fn stored(spec: &TableSpec) -> TableInfo {
        TableInfo {
            name: spec.name.clone(),
            table_type: Some(EXTERNAL_TABLE.to_owned()),
            columns: spec.columns.clone(),
            partition_keys: spec.partition_keys.clone(),
            location: Some(spec.location.clone()),
            input_format: Some(spec.storage.input_format.clone()),
            output_format: Some(spec.storage.output_format.clone()),
            serde_library: Some(spec.storage.serde_library.clone()),
            serde_parameters: spec.storage.serde_parameters.clone(),
            compressed: spec.storage.compressed,
            parameters: spec.parameters.clone(),
            view_original_text: Some(String::new()),
            view_expanded_text: None,
            version_id: Some("3".to_owned()),
            update_time_ms: None,
        }
    }

    #[test]
    fn a_stored_table_matches_unless_a_managed_field_differs() {
        let spec = table();
        let wanted = Definition::from(&spec);
        type Edit = fn(&mut TableInfo);
        let cases: [(&str, Edit, bool); 9] = [
            ("identical", |_| {}, true),
            (
                "a parameter another tool added is not ours to judge",
                |t| {
                    t.parameters.insert("numRows".to_owned(), "12".to_owned());
                },
                true,
            ),
            (
                "a trailing-slash-free location is a different string",
                |t| t.location = Some("s3://bucket/data/core_claimant".to_owned()),
                false,
            ),
            (
                "a column type changed",
                |t| t.columns[1].hive_type = "bigint".to_owned(),
                false,
            ),
            (
                "a partition key is missing",
                |t| t.partition_keys.clear(),
                false,
            ),
            (
                "the SerDe changed",
                |t| t.serde_library = Some("other".to_owned()),
                false,
            ),
            (
                "a managed parameter we no longer set is still stored",
                |t| {
                    t.parameters
                        .insert("skip.header.line.count".to_owned(), "1".to_owned());
                },
                false,
            ),
            (
                "a parameter of ours has another value",
                |t| {
                    t.parameters
                        .insert("classification".to_owned(), "csv".to_owned());
                },
                false,
            ),
            (
                "it is a view",
                |t| t.table_type = Some(VIRTUAL_VIEW.to_owned()),
                false,
            ),
        ];
        for (what, edit, matches) in cases {
            let mut current = stored(&spec);
            edit(&mut current);
            assert_eq!(wanted.matches(&current), matches, "{what}");
        }
    }

    #[test]
    fn an_update_keeps_what_other_tools_stored_and_drops_managed_leftovers() {
        let spec = table();
        let current = Table::builder()
            .name(&spec.name)
            .description("kept")
            .parameters("numRows", "12")
            .parameters("skip.header.line.count", "1")
            .parameters("classification", "csv")
            .build()
            .expect("table");
        let input = Definition::from(&spec)
            .input(Some(&current))
            .expect("input");
        let parameters = sorted(input.parameters());
        assert_eq!(
            parameters,
            BTreeMap::from([
                ("EXTERNAL".to_owned(), "TRUE".to_owned()),
                ("classification".to_owned(), "parquet".to_owned()),
                ("numRows".to_owned(), "12".to_owned()),
            ])
        );
        assert_eq!(input.description(), Some("kept"));
        assert_eq!(input.partition_keys().len(), 1);
        let sd = input.storage_descriptor().expect("storage descriptor");
        assert_eq!(sd.location(), Some("s3://bucket/data/core_claimant/"));
        assert_eq!(sd.columns().len(), 2);
    }

    #[test]
    fn partitions_go_in_batches_of_at_most_one_hundred() {
        let partitions: Vec<PartitionSpec> = (0..250)
            .map(|i| PartitionSpec {
                values: vec![format!("r{i}")],
                location: format!("s3://b/t/run=r{i}/"),
            })
            .collect();
        let sizes: Vec<usize> = partition_batches(&partitions).map(<[_]>::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(partition_batches(&[]).count(), 0);
    }

    #[test]
    fn locations_compare_without_their_trailing_slash() {
        assert!(same_location("s3://b/t/run=1/", "s3://b/t/run=1"));
        assert!(!same_location("s3://b/t/run=1/", "s3://b/t/run=2/"));
    }

    mod moto {
        //! Against moto server. The test kit's `Aws` comes from the library build of this
        //! crate, so the Glue client is built from its `SdkConfig`, which is shared.

        use super::*;
        use intraday_testkit as kit;

        async fn catalog() -> (Catalog, String) {
            let aws = kit::aws().await;
            let catalog = Catalog::new(aws_sdk_glue::Client::new(&aws.sdk));
            let database = kit::unique("db").replace('-', "_");
            assert!(catalog.ensure_database(&database).await.expect("create"));
            (catalog, database)
        }

        #[tokio::test]
        async fn moto_catalog_ensure_database_is_idempotent() {
            let (catalog, database) = catalog().await;
            assert!(!catalog.ensure_database(&database).await.expect("again"));
            assert!(catalog.database_exists(&database).await.expect("exists"));
            assert!(
                !catalog
                    .database_exists("surely_absent_db")
                    .await
                    .expect("absent")
            );
        }

        #[tokio::test]
        async fn moto_catalog_upsert_creates_then_leaves_then_updates_whole() {
            let (catalog, database) = catalog().await;
            let mut spec = table();
            assert_eq!(
                catalog
                    .upsert_table(&database, &spec)
                    .await
                    .expect("create"),
                Upserted::Created
            );
            let first = catalog
                .get_table(&database, &spec.name)
                .await
                .expect("get")
                .expect("exists");
            assert_eq!(
                catalog.upsert_table(&database, &spec).await.expect("again"),
                Upserted::Unchanged
            );
            let again = catalog
                .get_table(&database, &spec.name)
                .await
                .expect("get")
                .expect("exists");
            assert_eq!(again.version_id, first.version_id);
            assert_eq!(again.update_time_ms, first.update_time_ms);

            spec.location = "s3://bucket/elsewhere/core_claimant/".to_owned();
            assert_eq!(
                catalog
                    .upsert_table(&database, &spec)
                    .await
                    .expect("update"),
                Upserted::Updated
            );
            let updated = catalog
                .get_table(&database, &spec.name)
                .await
                .expect("get")
                .expect("exists");
            assert_ne!(updated.version_id, first.version_id);
            // The whole definition went with the update, not only the changed field.
            assert!(Definition::from(&spec).matches(&updated), "{updated:?}");
        }

        #[tokio::test]
        async fn moto_catalog_partitions_are_added_once_and_a_moved_one_is_reported() {
            let (catalog, database) = catalog().await;
            let spec = table();
            catalog.upsert_table(&database, &spec).await.expect("table");
            let partitions: Vec<PartitionSpec> = (0..3)
                .map(|i| PartitionSpec {
                    values: vec![format!("2024031{i}-1030")],
                    location: format!("{}run=2024031{i}-1030/", spec.location),
                })
                .collect();
            let report = catalog
                .add_partitions(&database, &spec, &partitions)
                .await
                .expect("add");
            assert_eq!((report.created, report.existing), (3, 0));
            assert!(report.failed.is_empty(), "{report:?}");

            let report = catalog
                .add_partitions(&database, &spec, &partitions)
                .await
                .expect("retry");
            assert_eq!((report.created, report.existing), (0, 3));
            assert!(report.failed.is_empty(), "{report:?}");

            let moved = PartitionSpec {
                values: partitions[0].values.clone(),
                location: "s3://bucket/other/".to_owned(),
            };
            let report = catalog
                .add_partitions(&database, &spec, &[moved])
                .await
                .expect("moved");
            assert_eq!(report.failed.len(), 1, "{report:?}");
            assert_eq!(report.failed[0].code, "AlreadyExistsException");
            assert!(!report.failed[0].retryable);
            assert!(
                report.failed[0].message.contains("s3://bucket/other/"),
                "{report:?}"
            );

            let found = catalog
                .get_partition(&database, &spec.name, &partitions[1].values)
                .await
                .expect("get")
                .expect("exists");
            assert_eq!(
                found.location.as_deref(),
                Some(partitions[1].location.as_str())
            );
            assert_eq!(found.serde_library.as_deref(), Some("serde"));
            assert_eq!(found.columns, spec.columns);
            assert!(
                catalog
                    .get_partition(&database, &spec.name, &["absent".to_owned()])
                    .await
                    .expect("get")
                    .is_none()
            );
        }

        #[tokio::test]
        async fn moto_catalog_views_round_trip() {
            let (catalog, database) = catalog().await;
            let view = ViewSpec {
                name: "v_core_claimant_latest".to_owned(),
                columns: vec![Column::new("id", "string")],
                original_text: "/* Presto View: e30= */".to_owned(),
                expanded_text: "/* Presto View */".to_owned(),
                parameters: BTreeMap::from([
                    ("presto_view".to_owned(), "true".to_owned()),
                    ("comment".to_owned(), "Presto View".to_owned()),
                ]),
            };
            assert_eq!(
                catalog.upsert_view(&database, &view).await.expect("create"),
                Upserted::Created
            );
            assert_eq!(
                catalog.upsert_view(&database, &view).await.expect("again"),
                Upserted::Unchanged
            );
            let got = catalog
                .get_table(&database, &view.name)
                .await
                .expect("get")
                .expect("exists");
            assert_eq!(got.table_type.as_deref(), Some(VIRTUAL_VIEW));
            assert_eq!(
                got.view_original_text.as_deref(),
                Some("/* Presto View: e30= */")
            );
            assert_eq!(got.parameters["presto_view"], "true");
            assert!(got.partition_keys.is_empty());
        }

        #[tokio::test]
        async fn moto_catalog_a_table_in_a_missing_database_is_a_permanent_error() {
            let aws = kit::aws().await;
            let catalog = Catalog::new(aws_sdk_glue::Client::new(&aws.sdk));
            let err = catalog
                .upsert_table("surely_absent_db", &table())
                .await
                .expect_err("no database");
            assert_eq!(err.code(), Some("EntityNotFoundException"), "{err}");
            assert!(!err.is_retryable());
        }
    }
}
