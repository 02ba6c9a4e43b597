//! S3: output files, manifests and the replica metadata the reaper removes.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, Tag, Tagging,
};
use intraday_core::S3Uri;

use crate::AwsError;
use crate::error::SdkResultExt;

/// DeleteObjects takes at most 1000 keys; S3 refuses more, though emulators may not.
pub const MAX_DELETE_BATCH: usize = 1000;
/// How many times keys that DeleteObjects reported as failed are tried again.
const DELETE_RETRIES: usize = 3;

/// One object found under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
}

/// What a batched delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    pub deleted: usize,
    /// Keys still not deleted after the retries, with S3's code and message.
    pub failed: Vec<(String, String)>,
}

/// Splits keys into DeleteObjects-sized batches.
pub fn delete_batches(keys: &[String]) -> impl Iterator<Item = &[String]> {
    keys.chunks(MAX_DELETE_BATCH)
}

#[derive(Debug, Clone)]
pub struct Objects {
    client: aws_sdk_s3::Client,
}

impl Objects {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    /// Writes one object with its tags in the same request.
    pub async fn put(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        content_type: &str,
        tags: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .content_type(content_type)
            .body(ByteStream::from(body))
            .set_tagging(tagging_header(tags))
            .send()
            .await
            .aws("PutObject")?;
        Ok(())
    }

    pub async fn get(&self, uri: &S3Uri) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
            .aws("GetObject")?;
        let bytes = out.body.collect().await.map_err(|e| AwsError::Transport {
            operation: "GetObject",
            message: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    /// Whether the object exists (HeadObject; a missing object is `false`, not an error).
    pub async fn exists(&self, uri: &S3Uri) -> Result<bool, AwsError> {
        let result = self
            .client
            .head_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(crate::error::from_sdk("HeadObject", e)),
        }
    }

    /// Every object whose key starts with the URI's key, page after page.
    pub async fn list(&self, prefix: &S3Uri) -> Result<Vec<ObjectSummary>, AwsError> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(prefix.bucket())
            .prefix(prefix.key())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("ListObjectsV2")?;
            found.extend(page.contents().iter().map(|o| ObjectSummary {
                key: o.key().unwrap_or_default().to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
            }));
        }
        Ok(found)
    }

    /// Deletes `keys` from `bucket` in batches of at most 1000. S3 answers 200 even when some
    /// keys fail, so each batch's `Errors` are retried, then reported.
    pub async fn delete(&self, bucket: &str, keys: &[String]) -> Result<DeleteReport, AwsError> {
        let mut report = DeleteReport::default();
        for batch in delete_batches(keys) {
            let mut pending: Vec<String> = batch.to_vec();
            let mut attempt = 0;
            loop {
                let (deleted, failed) = self.delete_once(bucket, &pending).await?;
                report.deleted += deleted;
                attempt += 1;
                if failed.is_empty() {
                    break;
                }
                if attempt > DELETE_RETRIES {
                    report.failed.extend(failed);
                    break;
                }
                pending = failed.into_iter().map(|(key, _)| key).collect();
            }
        }
        Ok(report)
    }

    async fn delete_once(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<(usize, Vec<(String, String)>), AwsError> {
        let objects = keys
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error("DeleteObjects", e))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| build_error("DeleteObjects", e))?;
        // Repeat: deleting a key that is gone succeeds.
        let out = self
            .client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .aws("DeleteObjects")?;
        let failed: Vec<(String, String)> = out
            .errors()
            .iter()
            .map(|e| {
                (
                    e.key().unwrap_or_default().to_owned(),
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("Unknown"),
                        e.message().unwrap_or("no message")
                    ),
                )
            })
            .collect();
        Ok((keys.len() - failed.len(), failed))
    }

    pub async fn tags(&self, uri: &S3Uri) -> Result<Vec<(String, String)>, AwsError> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
            .aws("GetObjectTagging")?;
        let mut tags: Vec<(String, String)> = out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        tags.sort();
        Ok(tags)
    }

    pub async fn put_tags(&self, uri: &S3Uri, tags: &[(&str, &str)]) -> Result<(), AwsError> {
        let set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error("PutObjectTagging", e))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| build_error("PutObjectTagging", e))?;
        self.client
            .put_object_tagging()
            .bucket(uri.bucket())
            .key(uri.key())
            .tagging(tagging)
            .send()
            .await
            .aws("PutObjectTagging")?;
        Ok(())
    }

    /// Starts a multipart upload; the object appears, tagged, only when it completes.
    pub async fn start_upload(
        &self,
        uri: &S3Uri,
        content_type: &str,
        tags: &[(&str, &str)],
    ) -> Result<MultipartUpload, AwsError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(uri.bucket())
            .key(uri.key())
            .content_type(content_type)
            .set_tagging(tagging_header(tags))
            .send()
            .await
            .aws("CreateMultipartUpload")?;
        Ok(MultipartUpload {
            client: self.client.clone(),
            uri: uri.clone(),
            upload_id: out.upload_id().unwrap_or_default().to_owned(),
            parts: Vec::new(),
            bytes: 0,
        })
    }
}

/// An upload in progress. Parts other than the last must be at least 5 MiB (S3's rule).
#[derive(Debug)]
pub struct MultipartUpload {
    client: aws_sdk_s3::Client,
    uri: S3Uri,
    upload_id: String,
    parts: Vec<CompletedPart>,
    /// Bytes sent in parts so far.
    bytes: u64,
}

impl MultipartUpload {
    pub async fn upload_part(&mut self, bytes: Vec<u8>) -> Result<(), AwsError> {
        let number = self.parts.len() as i32 + 1;
        let len = bytes.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(self.uri.bucket())
            .key(self.uri.key())
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .aws("UploadPart")?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        self.bytes += len;
        Ok(())
    }

    /// Completes the upload. It is not consumed, so that a caller whose completion failed
    /// can still abort it.
    pub async fn complete(&self) -> Result<(), AwsError> {
        // Repeat: when the first answer is lost the SDK sends it again, and the repeat can find
        // the upload already completed and answer NoSuchUpload (moto does; S3 documents
        // NoSuchUpload for an upload that "might have been aborted or completed":
        // https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html).
        // Then the object tells: ours is there with every byte we sent, in as many parts.
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(self.uri.bucket())
            .key(self.uri.key())
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .aws("CompleteMultipartUpload");
        match result {
            Err(e) if e.code() == Some("NoSuchUpload") => {
                if self.completed_earlier().await? {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            other => other.map(|_| ()),
        }
    }

    /// Whether the object at the upload's key is this upload, completed: its size is the
    /// bytes sent and its ETag says as many parts (`"…-N"`, S3's multipart ETag).
    async fn completed_earlier(&self) -> Result<bool, AwsError> {
        let head = self
            .client
            .head_object()
            .bucket(self.uri.bucket())
            .key(self.uri.key())
            .send()
            .await;
        let head = match head {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(false),
            Err(e) => return Err(crate::error::from_sdk("HeadObject", e)),
        };
        Ok(is_upload(
            head.content_length(),
            head.e_tag(),
            self.bytes,
            self.parts.len(),
        ))
    }

    /// Abandons the upload so no partial object is ever visible and no parts are billed.
    pub async fn abort(self) -> Result<(), AwsError> {
        self.client
            .abort_multipart_upload()
            .bucket(self.uri.bucket())
            .key(self.uri.key())
            .upload_id(&self.upload_id)
            .send()
            .await
            .aws("AbortMultipartUpload")?;
        Ok(())
    }
}

/// Tags as the `x-amz-tagging` header: URL-encoded `k=v&k=v`.
fn tagging_header(tags: &[(&str, &str)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    Some(
        tags.iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn build_error(operation: &'static str, e: aws_sdk_s3::error::BuildError) -> AwsError {
    AwsError::Service {
        operation,
        code: "BuildError".to_owned(),
        message: e.to_string(),
        retryable: false,
    }
}

/// Whether an object (its size and ETag) is an upload of `bytes` in `parts` parts: S3 gives a
/// multipart object the ETag `"<hash>-<parts>"`, a single PUT a plain hash.
fn is_upload(content_length: Option<i64>, e_tag: Option<&str>, bytes: u64, parts: usize) -> bool {
    let suffix = format!("-{parts}");
    content_length == i64::try_from(bytes).ok()
        && e_tag.is_some_and(|tag| tag.trim_matches('"').ends_with(&suffix))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_object_is_the_upload_only_with_its_size_and_part_count() {
        let tag = Some("\"3858f62230ac3c915f300c664312c11f-2\"");
        assert!(super::is_upload(Some(5_242_884), tag, 5_242_884, 2));
        // Another writer's object: a different size, a single PUT, or other parts.
        assert!(!super::is_upload(Some(15), tag, 5_242_884, 2));
        assert!(!super::is_upload(
            Some(5_242_884),
            Some("\"3858f62230ac3c915f300c664312c11f\""),
            5_242_884,
            2
        ));
        assert!(!super::is_upload(
            Some(5_242_884),
            Some("\"3858f62230ac3c915f300c664312c11f-3\""),
            5_242_884,
            2
        ));
        assert!(!super::is_upload(None, tag, 5_242_884, 2));
    }

    use super::*;

    #[test]
    fn deletes_go_in_batches_of_at_most_1000() {
        let keys: Vec<String> = (0..2501).map(|i| format!("k{i}")).collect();
        let sizes: Vec<usize> = delete_batches(&keys).map(<[String]>::len).collect();
        assert_eq!(sizes, [1000, 1000, 501]);
        assert_eq!(delete_batches(&[]).count(), 0);
    }

    #[test]
    fn tags_are_url_encoded() {
        assert_eq!(
            tagging_header(&[("pii", "true"), ("table", "a b&c=d")]).as_deref(),
            Some("pii=true&table=a%20b%26c%3Dd")
        );
        assert_eq!(tagging_header(&[]), None);
    }
}
