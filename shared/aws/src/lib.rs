//! Intraday's AWS adapters. [`AwsSettings`] builds the one `SdkConfig`; each adapter is a
//! struct with a narrow set of methods over one service, tested against moto server.
//!
//! | adapter | service | used for |
//! |---|---|---|
//! | [`JobStore`] | DynamoDB | job items, conditional status changes, transactions |
//! | [`Queues`] | SQS | messages between services, delays, visibility, dead letters |
//! | [`Objects`] | S3 | output, manifests, tagging, batched deletes |
//! | [`Secrets`] | Secrets Manager | the collections secret |
//! | [`Alerts`] | SNS | operator alerts |
//! | `Emr` (feature `emr`) | EMR | launching, finding and stopping clusters |
//! | `Catalog` (feature `glue`) | Glue Data Catalog | databases, tables, partitions and views |
//! | `Stacks` (feature `stack`) | CloudFormation | deploying the template locally |
//! | `Bus` (feature `bus`) | EventBridge | the local EMR stand-in's state changes |

mod alerts;
#[cfg(feature = "bus")]
mod bus;
#[cfg(feature = "glue")]
pub mod catalog;
mod config;
#[cfg(feature = "emr")]
pub mod emr;
mod error;
mod form_encoding;
#[cfg(feature = "lambda")]
pub mod functions;
pub mod jobs;
pub mod locks;
mod objects;
mod queues;
mod retry;
mod secrets;
#[cfg(feature = "stack")]
mod stack;

pub use alerts::Alerts;
pub use aws_credential_types::Credentials;
#[cfg(feature = "bus")]
pub use bus::Bus;
#[cfg(feature = "glue")]
pub use catalog::{
    Catalog, Column, MAX_PARTITION_BATCH, PartitionFailure, PartitionInfo, PartitionReport,
    PartitionSpec, Storage, TableInfo, TableSpec, Upserted, ViewSpec,
};
pub use config::{Aws, AwsSettings, Timeouts, is_loopback, static_credentials};
#[cfg(feature = "emr")]
pub use emr::{ClusterInfo, ClusterRequest, ClusterSummary, Emr, StepInfo};
pub use error::{AwsError, causes};
#[cfg(feature = "lambda")]
pub use functions::{FunctionInfo, Functions};
pub use jobs::{Condition, JobStore, Outcome, TxOp, Value};
pub use objects::{
    DeleteReport, MAX_DELETE_BATCH, MultipartUpload, ObjectSummary, Objects, delete_batches,
};
pub use queues::{MAX_BATCH, MAX_DELAY, Queues, Received, url_from_arn};
pub use secrets::Secrets;
#[cfg(feature = "stack")]
pub use stack::{Deployed, Stacks};

pub use aws_sdk_dynamodb::types::AttributeValue;
