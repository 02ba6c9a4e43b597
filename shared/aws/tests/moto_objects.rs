//! The object adapter against moto server's S3.

use intraday_aws::Objects;
use intraday_core::S3Uri;
use intraday_testkit as kit;

fn uri(bucket: &str, key: &str) -> S3Uri {
    S3Uri::new(bucket, key).expect("valid uri")
}

#[tokio::test]
async fn moto_put_get_and_tags() {
    let aws = kit::aws().await;
    let objects = Objects::new(aws.s3());
    let bucket = kit::bucket(&aws).await;
    let at = uri(
        &bucket,
        "data/core_claimant/run=20240311-1030/part-00000.parquet",
    );
    objects
        .put(
            &at,
            b"hello".to_vec(),
            "application/octet-stream",
            &[("pii", "true"), ("db", "core"), ("table", "claimant")],
        )
        .await
        .expect("put");
    assert_eq!(objects.get(&at).await.expect("get"), b"hello");
    assert_eq!(
        objects.tags(&at).await.expect("tags"),
        [
            ("db".into(), "core".into()),
            ("pii".into(), "true".into()),
            ("table".into(), "claimant".into())
        ]
    );
    objects
        .put_tags(&at, &[("pii", "false")])
        .await
        .expect("retag");
    assert_eq!(
        objects.tags(&at).await.expect("tags"),
        [("pii".to_owned(), "false".to_owned())]
    );
}

#[tokio::test]
async fn moto_multipart_upload_completes_tagged_or_leaves_nothing() {
    let aws = kit::aws().await;
    let objects = Objects::new(aws.s3());
    let bucket = kit::bucket(&aws).await;

    let at = uri(&bucket, "big/file.bin");
    let mut upload = objects
        .start_upload(&at, "application/octet-stream", &[("pii", "true")])
        .await
        .expect("start");
    let part = vec![7u8; 5 * 1024 * 1024];
    upload.upload_part(part.clone()).await.expect("part 1");
    upload.upload_part(b"tail".to_vec()).await.expect("part 2");
    upload.complete().await.expect("complete");
    let body = objects.get(&at).await.expect("get");
    assert_eq!(body.len(), part.len() + 4);
    assert_eq!(
        objects.tags(&at).await.expect("tags"),
        [("pii".to_owned(), "true".to_owned())]
    );

    let aborted = uri(&bucket, "big/aborted.bin");
    let mut upload = objects
        .start_upload(&aborted, "application/octet-stream", &[])
        .await
        .expect("start");
    upload.upload_part(b"partial".to_vec()).await.expect("part");
    upload.abort().await.expect("abort");
    let listed = objects.list(&uri(&bucket, "big/")).await.expect("list");
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["big/file.bin"]
    );
}

/// A CompleteMultipartUpload whose answer is lost (or whose connection is dropped) took
/// effect; the SDK's repeat finds no upload. The upload is still reported complete, because
/// the object there is this one (`objects.rs` tests that another object is not taken for it).
#[tokio::test]
async fn moto_a_completed_upload_whose_answer_is_lost_is_still_complete() {
    use intraday_testkit::faults::Fault;
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let (proxy, through) = kit::faults::in_front_of_moto().await;
    let objects = Objects::new(through.s3());
    for (i, fault) in [Fault::LoseAnswer, Fault::Reset].into_iter().enumerate() {
        let at = uri(&bucket, &format!("big/lost-{i}.bin"));
        let mut upload = objects
            .start_upload(&at, "application/octet-stream", &[])
            .await
            .expect("start");
        upload
            .upload_part(vec![1u8; 5 * 1024 * 1024])
            .await
            .expect("part 1");
        upload.upload_part(b"tail".to_vec()).await.expect("part 2");
        let before = proxy.calls("CompleteMultipartUpload");
        proxy.fault_next("CompleteMultipartUpload", 1, fault);
        upload
            .complete()
            .await
            .expect("complete after a lost answer");
        assert_eq!(
            proxy.calls("CompleteMultipartUpload") - before,
            2,
            "{fault:?}: the SDK sent it again"
        );
        assert_eq!(
            objects.get(&at).await.expect("get").len(),
            5 * 1024 * 1024 + 4
        );
    }
}

#[tokio::test]
async fn moto_lists_every_page_and_deletes_in_batches_only_under_the_prefix() {
    let aws = kit::aws().await;
    let objects = Objects::new(aws.s3());
    let bucket = kit::bucket(&aws).await;
    // 1205 keys under meta_j-ABC/ (more than one list page and one delete batch), and a
    // neighbour meta_j-ABCD/ that must survive.
    let mut keys = Vec::new();
    for i in 0..1205 {
        keys.push(format!("hbase/data/hbase/meta_j-ABC/region-{i:04}"));
    }
    let neighbour = "hbase/data/hbase/meta_j-ABCD/region-0000".to_owned();
    let all: Vec<String> = keys.iter().cloned().chain([neighbour.clone()]).collect();
    kit::put_empty_objects(&aws, &bucket, &all).await;

    let listed = objects
        .list(&uri(&bucket, "hbase/data/hbase/meta_j-ABC/"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1205);
    let listed_keys: Vec<String> = listed.into_iter().map(|o| o.key).collect();
    let report = objects.delete(&bucket, &listed_keys).await.expect("delete");
    assert_eq!(report.deleted, 1205);
    assert!(report.failed.is_empty());
    let rest = objects.list(&uri(&bucket, "hbase/")).await.expect("list");
    assert_eq!(
        rest.into_iter().map(|o| o.key).collect::<Vec<_>>(),
        [neighbour]
    );
}

/// A connection dropped before S3's answer came is tried again, not reported (the unit test
/// in `src/retry.rs` covers the kind the SDK alone does not retry).
#[tokio::test]
async fn moto_a_dropped_connection_on_a_read_is_tried_again() {
    use intraday_testkit::faults::Fault;
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let (proxy, through) = kit::faults::in_front_of_moto().await;
    let objects = Objects::new(through.s3());
    let at = uri(&bucket, "dropped/one.txt");
    objects
        .put(&at, b"x".to_vec(), "text/plain", &[])
        .await
        .expect("put");
    for operation in ["ListObjectsV2", "GetObject"] {
        let before = proxy.calls(operation);
        proxy.fault_next(operation, 1, Fault::Reset);
        match operation {
            "ListObjectsV2" => {
                let listed = objects
                    .list(&uri(&bucket, "dropped/"))
                    .await
                    .expect("listed after a dropped connection");
                assert_eq!(listed.len(), 1);
            }
            _ => {
                let bytes = objects
                    .get(&at)
                    .await
                    .expect("read after a dropped connection");
                assert_eq!(bytes, b"x");
            }
        }
        assert_eq!(
            proxy.calls(operation) - before,
            2,
            "{operation}: tried twice"
        );
    }
}
