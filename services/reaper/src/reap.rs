//! What to delete for a terminated replica, and deleting exactly that.
//!
//! Every read replica writes `<root>/data/hbase/meta_<clusterId>/` into the primary's HBase
//! root (and EMRFS a `meta_<clusterId>_$folder$` marker beside it) and leaves them there; the
//! primary then reports inconsistencies. The original listed `meta_<clusterId>` without a
//! trailing `/`, so `meta_j-ABC` also matched `meta_j-ABCD…`: here the prefix always ends
//! with `/` and the marker is deleted by its exact key.

use intraday_aws::{Emr, Objects};
use intraday_core::S3Uri;

use crate::ReapError;

/// The two locations a cluster's metadata occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaLocations {
    /// `<root>/data/hbase/meta_<clusterId>/`, always ending with `/`.
    pub prefix: S3Uri,
    /// `<root>/data/hbase/meta_<clusterId>_$folder$`.
    pub marker: S3Uri,
}

/// What a reap found, and with `dry_run` off, deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapReport {
    pub cluster_id: String,
    pub prefix: String,
    /// Keys under the prefix, plus the marker when it exists.
    pub keys: Vec<String>,
    pub deleted: usize,
    pub dry_run: bool,
}

/// Checks a cluster id before it becomes part of an S3 key: `j-` and 1 to 64 upper-case
/// letters and digits.
pub fn validate_cluster_id(id: &str) -> Result<(), ReapError> {
    let ok = id.strip_prefix("j-").is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(ReapError::InvalidClusterId(id.to_owned()))
    }
}

pub fn meta_locations(root: &S3Uri, cluster_id: &str) -> Result<MetaLocations, ReapError> {
    validate_cluster_id(cluster_id)?;
    let bad = |e: intraday_core::CoreError| ReapError::Root(root.to_string(), e.to_string());
    let prefix = root
        .join(&format!("data/hbase/meta_{cluster_id}/"))
        .map_err(bad)?;
    let marker = root
        .join(&format!("data/hbase/meta_{cluster_id}_$folder$"))
        .map_err(bad)?;
    debug_assert!(prefix.key().ends_with('/'));
    Ok(MetaLocations { prefix, marker })
}

/// Deletes (or, dry, lists) a terminated Intraday cluster's metadata. The id is validated,
/// the cluster must be terminated and carry our tag, and only keys under the prefix and the
/// marker are touched.
pub async fn reap(
    emr: &Emr,
    objects: &Objects,
    root: &S3Uri,
    cluster_id: &str,
    dry_run: bool,
) -> Result<ReapReport, ReapError> {
    let locations = meta_locations(root, cluster_id)?;
    let cluster = emr.describe(cluster_id).await?;
    if !cluster.is_intraday() {
        return Err(ReapError::NotOurs(cluster_id.to_owned()));
    }
    if !matches!(
        cluster.state.as_str(),
        "TERMINATED" | "TERMINATED_WITH_ERRORS"
    ) {
        return Err(ReapError::NotTerminated {
            cluster: cluster_id.to_owned(),
            state: cluster.state,
        });
    }
    let mut keys: Vec<String> = objects
        .list(&locations.prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.starts_with(locations.prefix.key()))
        .collect();
    let marker_exists = objects
        .list(&locations.marker)
        .await?
        .iter()
        .any(|o| o.key == locations.marker.key());
    if marker_exists {
        keys.push(locations.marker.key().to_owned());
    }
    let mut report = ReapReport {
        cluster_id: cluster_id.to_owned(),
        prefix: locations.prefix.to_string(),
        keys,
        deleted: 0,
        dry_run,
    };
    if dry_run || report.keys.is_empty() {
        return Ok(report);
    }
    let outcome = objects
        .delete(locations.prefix.bucket(), &report.keys)
        .await?;
    report.deleted = outcome.deleted;
    if let Some((example, reason)) = outcome.failed.first() {
        return Err(ReapError::Incomplete {
            cluster: cluster_id.to_owned(),
            prefix: report.prefix,
            failed: outcome.failed.len(),
            example: format!("{example} ({reason})"),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_checked_before_they_become_keys() {
        for ok in ["j-ABC", "j-1YONHTCP3YZKC", &format!("j-{}", "A".repeat(64))] {
            assert!(validate_cluster_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "j-",
            "ABC",
            "j-abc",
            "j-AB/C",
            "j-AB C",
            "j-ABC/../x",
            "s-ABC",
            &format!("j-{}", "A".repeat(65)),
        ] {
            let err = validate_cluster_id(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with(&format!("`{bad}` is not an EMR cluster id")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_prefix_ends_with_a_slash_and_the_marker_is_its_sibling() {
        let root = S3Uri::parse("s3://ingest-hbase/hbase").expect("root");
        let at = meta_locations(&root, "j-ABC").expect("locations");
        assert_eq!(
            at.prefix.to_string(),
            "s3://ingest-hbase/hbase/data/hbase/meta_j-ABC/"
        );
        assert_eq!(
            at.marker.to_string(),
            "s3://ingest-hbase/hbase/data/hbase/meta_j-ABC_$folder$"
        );
        // `meta_j-ABCD/...` does not start with `meta_j-ABC/`.
        assert!(!"hbase/data/hbase/meta_j-ABCD/x".starts_with(at.prefix.key()));

        let bucket_root = S3Uri::parse("s3://ingest-hbase").expect("root");
        assert_eq!(
            meta_locations(&bucket_root, "j-ABC")
                .expect("locations")
                .prefix
                .key(),
            "data/hbase/meta_j-ABC/"
        );
    }
}
