//! The reaper against moto server: exactly the terminated cluster's metadata goes, and only
//! for our clusters.

use intraday_aws::emr::ClusterRequest;
use intraday_aws::{Emr, Objects};
use intraday_core::S3Uri;
use intraday_reaper::{Ctx, ReapError, handle, reap};
use intraday_runtime::{HandlerError, Message};
use intraday_testkit as kit;

fn request(tags: &[(&str, &str)]) -> ClusterRequest {
    kit::cluster_request(tags)
}

fn event(cluster: &str, state: &str) -> Message {
    let body = serde_json::json!({
        "version": "0", "id": kit::unique("evt"), "detail-type": "EMR Cluster State Change", "source": "aws.emr",
        "time": "2026-11-26T07:00:00Z", "region": "eu-west-2", "resources": [],
        "detail": {"severity": "INFO", "stateChangeReason": "{\"code\":\"ALL_STEPS_COMPLETED\",\"message\":\"Steps completed\"}",
                   "name": "intraday-incremental", "clusterId": cluster, "state": state, "message": "m"}
    });
    Message {
        id: "m".into(),
        body: body.to_string(),
        receive_count: 1,
        sent_ms: None,
    }
}

#[tokio::test]
async fn moto_reaps_exactly_the_terminated_clusters_metadata() {
    let aws = kit::aws().await;
    let emr = Emr::new(aws.emr());
    let objects = Objects::new(aws.s3());
    let bucket = kit::bucket(&aws).await;
    let root = S3Uri::parse(&format!("s3://{bucket}/hbase")).expect("root");

    let cluster = emr
        .run(&request(&[("ManagedBy", "intraday")]))
        .await
        .expect("cluster");
    let neighbour = format!("{cluster}D");
    let mut ours: Vec<String> = (0..2500)
        .map(|i| format!("hbase/data/hbase/meta_{cluster}/region-{i:05}"))
        .collect();
    let marker = format!("hbase/data/hbase/meta_{cluster}_$folder$");
    let survivors = vec![
        format!("hbase/data/hbase/meta_{neighbour}/region-00000"),
        format!("hbase/data/hbase/meta_{neighbour}_$folder$"),
        format!("hbase/data/hbase/meta_{cluster}"),
        "hbase/data/hbase/meta/region-00000".to_owned(),
        "hbase/data/default/usertable/region-00000".to_owned(),
        format!("elsewhere/meta_{cluster}/x"),
    ];
    ours.push(marker.clone());
    kit::put_empty_objects(&aws, &bucket, &ours).await;
    kit::put_empty_objects(&aws, &bucket, &survivors).await;

    let ctx = Ctx {
        emr: emr.clone(),
        objects: objects.clone(),
        hbase_root: root.clone(),
    };

    // While the cluster runs, nothing is deleted and the reason is given.
    let err = reap(&emr, &objects, &root, &cluster, false)
        .await
        .expect_err("running");
    assert!(matches!(err, ReapError::NotTerminated { .. }), "{err}");

    emr.terminate(&cluster).await.expect("terminate");
    let dry = reap(&emr, &objects, &root, &cluster, true)
        .await
        .expect("dry run");
    assert_eq!(dry.keys.len(), 2501);
    assert_eq!(dry.deleted, 0);
    assert!(dry.keys.contains(&marker));
    assert_eq!(
        objects
            .list(&S3Uri::new(&bucket, "hbase/").expect("uri"))
            .await
            .expect("list")
            .len(),
        2506
    );

    handle(event(&cluster, "TERMINATED"), &ctx)
        .await
        .expect("reaped");
    let mut left: Vec<String> = objects
        .list(&S3Uri::new(&bucket, "").expect("uri"))
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    left.sort();
    let mut want = survivors.clone();
    want.sort();
    assert_eq!(left, want);

    // A second delivery finds nothing left and is fine.
    handle(event(&cluster, "TERMINATED"), &ctx)
        .await
        .expect("again");
}

#[tokio::test]
async fn moto_an_invalid_or_foreign_cluster_id_deletes_nothing_and_says_why() {
    let aws = kit::aws().await;
    let emr = Emr::new(aws.emr());
    let objects = Objects::new(aws.s3());
    let bucket = kit::bucket(&aws).await;
    let root = S3Uri::parse(&format!("s3://{bucket}/hbase")).expect("root");
    let foreign = emr
        .run(&request(&[("Team", "someone-else")]))
        .await
        .expect("cluster");
    emr.terminate(&foreign).await.expect("terminate");
    let keys = vec![
        format!("hbase/data/hbase/meta_{foreign}/region-0"),
        "hbase/data/hbase/meta_j-ABC/region-0".to_owned(),
    ];
    kit::put_empty_objects(&aws, &bucket, &keys).await;
    let ctx = Ctx {
        emr: emr.clone(),
        objects: objects.clone(),
        hbase_root: root.clone(),
    };

    let err = reap(&emr, &objects, &root, &foreign, false)
        .await
        .expect_err("foreign");
    assert_eq!(
        err.to_string(),
        format!(
            "cluster {foreign} does not carry the tag ManagedBy=intraday, so it is not ours; nothing deleted"
        )
    );
    // Through the handler a foreign termination is ignored, not an error.
    handle(event(&foreign, "TERMINATED"), &ctx)
        .await
        .expect("ignored");

    for bad in ["j-abc", "j-ABC/../..", "../j-ABC", ""] {
        let err = handle(event(bad, "TERMINATED"), &ctx).await.expect_err(bad);
        assert!(
            matches!(&err, HandlerError::Permanent(m) if m.contains("is not an EMR cluster id")),
            "{err:?}"
        );
    }
    let left = objects
        .list(&S3Uri::new(&bucket, "").expect("uri"))
        .await
        .expect("list");
    assert_eq!(left.len(), 2, "{left:?}");
}
