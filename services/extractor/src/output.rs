//! Where files go: a local directory or an S3 prefix. Either way an object appears only when
//! it is complete: a local file is written under a hidden name and renamed, an S3 object is
//! a multipart upload that is completed or aborted.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use intraday_aws::{MultipartUpload, Objects};
use intraday_core::S3Uri;
use sha2::{Digest, Sha256};

use crate::ExtractorError;

/// S3 wants parts of at least 5 MiB but the last; 8 MiB keeps memory low and requests few.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum Output {
    Local { root: PathBuf },
    S3 { objects: Objects, root: S3Uri },
}

/// A finished object: its key relative to the output root, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

impl Output {
    /// A local directory, created if missing.
    pub fn local(root: impl Into<PathBuf>) -> Result<Self, ExtractorError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| ExtractorError::file("creating the output directory", &root, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| ExtractorError::file("reading the output directory", &root, e))?;
        Ok(Output::Local { root })
    }

    pub fn s3(objects: Objects, root: S3Uri) -> Self {
        Output::S3 {
            objects,
            root: root.as_prefix(),
        }
    }

    /// The root as the manifest records it.
    pub fn root(&self) -> String {
        match self {
            Output::Local { root } => root.display().to_string(),
            Output::S3 { root, .. } => root.to_string(),
        }
    }

    /// Where `key` is, in full: for messages.
    pub fn locate(&self, key: &str) -> String {
        match self {
            Output::Local { root } => local_path(root, key).display().to_string(),
            Output::S3 { root, .. } => format!("{root}{key}"),
        }
    }

    /// Starts an object at `key` (relative to the root, `/`-separated).
    pub async fn create(
        &self,
        key: &str,
        content_type: &str,
        tags: &[(&str, &str)],
    ) -> Result<ObjectWriter, ExtractorError> {
        let target = match self {
            Output::Local { root } => {
                let path = local_path(root, key);
                let parent = path.parent().unwrap_or(root);
                fs::create_dir_all(parent)
                    .map_err(|e| ExtractorError::file("creating a directory", parent, e))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // A leading dot hides the file from Hive and Spark until it is renamed.
                let temporary = parent.join(format!(".{name}.partial"));
                let file = File::create(&temporary)
                    .map_err(|e| ExtractorError::file("creating a file", &temporary, e))?;
                Target::Local {
                    temporary,
                    path,
                    file,
                }
            }
            Output::S3 { objects, root } => {
                let uri = root.join(key)?;
                Target::S3(objects.start_upload(&uri, content_type, tags).await?)
            }
        };
        Ok(ObjectWriter {
            key: key.to_owned(),
            target,
            pending: Vec::new(),
            parts: 0,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Writes a small object in one request: the manifest.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ExtractorError> {
        match self {
            Output::Local { .. } => {
                let mut writer = self.create(key, content_type, &[]).await?;
                writer.write(body).await?;
                writer.finish().await.map(|_| ())
            }
            Output::S3 { objects, root } => {
                objects
                    .put(&root.join(key)?, body, content_type, &[])
                    .await?;
                Ok(())
            }
        }
    }

    /// Reads a small object whole: a task's manifest, a task's rejects file.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, ExtractorError> {
        match self {
            Output::Local { root } => {
                let path = local_path(root, key);
                fs::read(&path).map_err(|e| ExtractorError::file("reading", path, e))
            }
            Output::S3 { objects, root } => Ok(objects.get(&root.join(key)?).await?),
        }
    }

    /// Removes what an earlier attempt of the same run left in `folder` (a key ending in
    /// `/`): the files whose names start with `name_prefix`, which carries the run's
    /// correlation id, but for the keys in `keep`. A retried step never leaves a stale extra
    /// file beside the new ones, and another run that shares the folder (the same trigger
    /// minute) is never touched. Returns how many objects were removed.
    pub async fn clear(
        &self,
        folder: &str,
        name_prefix: &str,
        keep: &[String],
    ) -> Result<usize, ExtractorError> {
        match self {
            Output::Local { root } => {
                let dir = local_path(root, folder);
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(ExtractorError::file("reading a directory", &dir, e)),
                };
                let mut removed = 0;
                for entry in entries {
                    let path = entry
                        .map_err(|e| ExtractorError::file("reading a directory", &dir, e))?
                        .path();
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let kept = keep.contains(&format!("{folder}{name}"));
                    if path.is_file() && name.starts_with(name_prefix) && !kept {
                        fs::remove_file(&path)
                            .map_err(|e| ExtractorError::file("removing a stale file", &path, e))?;
                        removed += 1;
                    }
                }
                Ok(removed)
            }
            Output::S3 { objects, root } => {
                let listed = objects
                    .list(&root.join(&format!("{folder}{name_prefix}"))?)
                    .await?;
                let keep = keep
                    .iter()
                    .map(|k| root.join(k).map(|uri| uri.key().to_owned()))
                    .collect::<Result<Vec<_>, _>>()?;
                let keys: Vec<String> = listed
                    .into_iter()
                    .map(|o| o.key)
                    .filter(|k| !keep.contains(k))
                    .collect();
                if keys.is_empty() {
                    return Ok(0);
                }
                let report = objects.delete(root.bucket(), &keys).await?;
                if let Some((key, error)) = report.failed.first() {
                    return Err(intraday_aws::AwsError::DeleteFailed {
                        count: report.failed.len(),
                        example_key: key.clone(),
                        example_error: error.clone(),
                    }
                    .into());
                }
                Ok(report.deleted)
            }
        }
    }
}

fn local_path(root: &Path, key: &str) -> PathBuf {
    key.split('/')
        .filter(|part| !part.is_empty())
        .fold(root.to_path_buf(), |path, part| path.join(part))
}

enum Target {
    Local {
        temporary: PathBuf,
        path: PathBuf,
        file: File,
    },
    S3(MultipartUpload),
}

/// An object being written. Bytes are hashed as they pass; for S3 they are gathered into
/// parts of [`PART_SIZE`].
pub struct ObjectWriter {
    key: String,
    target: Target,
    pending: Vec<u8>,
    parts: u32,
    hasher: Sha256,
    size: u64,
}

impl ObjectWriter {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, bytes: Vec<u8>) -> Result<(), ExtractorError> {
        self.hasher.update(&bytes);
        self.size += bytes.len() as u64;
        match &mut self.target {
            Target::Local {
                file, temporary, ..
            } => file
                .write_all(&bytes)
                .map_err(|e| ExtractorError::file("writing", temporary.as_path(), e)),
            Target::S3(upload) => {
                // Each part is filled once, in a buffer of its full size: a buffer grown as
                // bytes come would be copied whole each time it doubled, as the Parquet
                // writer's was (`writer::Pieces`).
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    if self.pending.capacity() == 0 {
                        self.pending.reserve_exact(PART_SIZE);
                    }
                    let (now, later) =
                        rest.split_at(rest.len().min(PART_SIZE - self.pending.len()));
                    self.pending.extend_from_slice(now);
                    rest = later;
                    if self.pending.len() == PART_SIZE {
                        upload
                            .upload_part(std::mem::take(&mut self.pending))
                            .await?;
                        self.parts += 1;
                    }
                }
                Ok(())
            }
        }
    }

    /// Completes the object and says what was written. An object that cannot be completed
    /// is abandoned as [`ObjectWriter::abort`] does: the writer is gone once it is finishing,
    /// so nobody else could, and an upload left open keeps its parts, unseen and billed,
    /// until a lifecycle rule removes them. (An upload whose completion took effect before
    /// its answer was lost is not an upload any more; aborting it then fails with
    /// NoSuchUpload and changes nothing.)
    pub async fn finish(mut self) -> Result<Written, ExtractorError> {
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        let (pending, parts) = (std::mem::take(&mut self.pending), self.parts);
        let completed = match &mut self.target {
            Target::Local {
                temporary,
                path,
                file,
            } => file
                .flush()
                .and_then(|()| file.sync_all())
                .map_err(|e| ExtractorError::file("writing", &*temporary, e))
                .and_then(|()| {
                    fs::rename(&*temporary, &*path)
                        .map_err(|e| ExtractorError::file("renaming into place", &*path, e))
                }),
            Target::S3(upload) => async {
                // The last part may be small, and S3 needs at least one part.
                if !pending.is_empty() || parts == 0 {
                    upload.upload_part(pending).await?;
                }
                upload.complete().await
            }
            .await
            .map_err(ExtractorError::from),
        };
        if let Err(e) = completed {
            self.target.abandon(&self.key).await;
            return Err(e);
        }
        Ok(Written {
            key: self.key,
            size: self.size,
            sha256,
        })
    }

    /// Abandons the object: nothing of it stays visible.
    pub async fn abort(self) {
        self.target.abandon(&self.key).await;
    }
}

impl Target {
    /// Removes what was written of an object that will not be completed.
    async fn abandon(self, key: &str) {
        match self {
            Target::Local { temporary, .. } => {
                let _ = fs::remove_file(temporary);
            }
            Target::S3(upload) => {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(key = %key, error = %e, "could not abort an upload; a bucket lifecycle rule for incomplete uploads will remove it");
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "intraday-extractor-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn a_local_file_that_cannot_be_put_in_place_leaves_nothing_behind() {
        let dir = temp_dir("unplaceable");
        let output = Output::local(&dir).expect("dir");
        let key = "core_claimant/run=20240311-1030/part-00000.parquet";
        let mut writer = output.create(key, "x", &[]).await.expect("create");
        writer.write(b"hello".to_vec()).await.expect("write");
        // A directory with something in it where the file should go: the rename fails.
        let in_the_way = dir.join(key);
        fs::create_dir_all(in_the_way.join("occupied")).expect("a directory in the way");
        let err = writer
            .finish()
            .await
            .expect_err("the rename fails")
            .to_string();
        assert!(err.contains("renaming into place"), "{err}");
        let parent = in_the_way.parent().expect("a parent");
        let left: Vec<String> = fs::read_dir(parent)
            .expect("list")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            left,
            ["part-00000.parquet"],
            "only the directory in the way"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_local_file_appears_only_when_finished_with_its_checksum() {
        let dir = temp_dir("local");
        let output = Output::local(&dir).expect("dir");
        let mut writer = output
            .create(
                "core_claimant/run=20240311-1030/part-00000.parquet",
                "x",
                &[],
            )
            .await
            .expect("create");
        writer.write(b"hello ".to_vec()).await.expect("write");
        writer.write(b"world".to_vec()).await.expect("write");
        let final_path = dir.join("core_claimant/run=20240311-1030/part-00000.parquet");
        assert!(!final_path.exists(), "not visible before finish");
        let written = writer.finish().await.expect("finish");
        assert_eq!(written.size, 11);
        // sha256("hello world")
        assert_eq!(
            written.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(fs::read(&final_path).expect("read"), b"hello world");

        let mut aborted = output
            .create(
                "core_claimant/run=20240311-1030/part-00001.parquet",
                "x",
                &[],
            )
            .await
            .expect("create");
        aborted.write(b"partial".to_vec()).await.expect("write");
        aborted.abort().await;
        let names: Vec<String> = fs::read_dir(dir.join("core_claimant/run=20240311-1030"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part-00000.parquet"]);

        // Another run's files in the same folder are not ours to clear.
        let folder = "core_claimant/run=20240311-1030/";
        assert_eq!(
            output
                .clear(folder, "part-other-", &[])
                .await
                .expect("clear"),
            0
        );
        // A file the caller keeps stays.
        let kept = format!("{folder}part-00000.parquet");
        assert_eq!(
            output
                .clear(folder, "part-", std::slice::from_ref(&kept))
                .await
                .expect("clear"),
            0
        );
        assert_eq!(output.get(&kept).await.expect("get"), b"hello world");
        assert_eq!(output.clear(folder, "part-", &[]).await.expect("clear"), 1);
        assert_eq!(
            output
                .clear("nothing/here/", "part-", &[])
                .await
                .expect("clear"),
            0
        );
        assert!(output.get(&kept).await.is_err(), "removed");
        let _ = fs::remove_dir_all(&dir);
    }
}
