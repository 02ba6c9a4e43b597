//! EMR Cluster State Change (TERMINATED, TERMINATED_WITH_ERRORS) → delete the replica's
//! metadata. Terminations of clusters that are not ours reach this queue too: they are
//! logged and left alone.

use intraday_aws::{Emr, Objects};
use intraday_core::S3Uri;
use intraday_events::{AwsEventDetail, Inbound};
use intraday_runtime::{HandlerError, HandlerFuture, Message};

use crate::ReapError;
use crate::reap::reap;

pub struct Ctx {
    pub emr: Emr,
    pub objects: Objects,
    /// The primary's HBase root, `s3://bucket/path`.
    pub hbase_root: S3Uri,
}

pub fn handler(message: Message, ctx: &Ctx) -> HandlerFuture<'_> {
    Box::pin(handle(message, ctx))
}

pub async fn handle(message: Message, ctx: &Ctx) -> Result<(), HandlerError> {
    let inbound = Inbound::parse(&message.body)?;
    let change = match &inbound {
        Inbound::Aws(event) => match &event.detail {
            AwsEventDetail::ClusterStateChange(change) => change,
            _ => {
                return Err(inbound
                    .refuse("reaper", "EMR Cluster State Change events")
                    .into());
            }
        },
        Inbound::Message(_) => {
            return Err(inbound
                .refuse("reaper", "EMR Cluster State Change events")
                .into());
        }
    };
    if !change.state.is_terminated() {
        tracing::debug!(cluster = %change.cluster_id, state = %change.state, "not a termination; nothing to reap");
        return Ok(());
    }
    match reap(
        &ctx.emr,
        &ctx.objects,
        &ctx.hbase_root,
        &change.cluster_id,
        false,
    )
    .await
    {
        Ok(report) => {
            tracing::info!(cluster = %report.cluster_id, prefix = %report.prefix, deleted = report.deleted, "replica metadata removed");
            Ok(())
        }
        Err(ReapError::NotOurs(cluster)) => {
            tracing::debug!(cluster = %cluster, "terminated cluster is not ours; nothing deleted");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
