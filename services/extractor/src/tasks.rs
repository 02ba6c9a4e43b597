//! A run spread over a Spark application (`spark/intraday_spark.py`). Its driver asks for
//! the run's tasks (`--plan`); each Spark task extracts one key range of one collection
//! (`--task`), writing its own part files, its own rejects and a task manifest; then the
//! driver commits the run (`--commit N`), writing the run's manifest last, from the task
//! manifests. Until then the run has no manifest and is incomplete, however many tasks
//! finished: the monitor publishes nothing without it.

use std::sync::Arc;

use intraday_core::{Collection, CorrelationId, Window, run_folder};
use intraday_events::{CollectionManifest, Manifest};
use serde::{Deserialize, Serialize};

use crate::ExtractorError;
use crate::keys::KeyCache;
use crate::manifest::{FileNames, data_folder, rejects_folder};
use crate::output::Output;
use crate::run::{CollectionJob, RunConfig, clear_stale, extract, publish, tags};
use crate::source::{KeyRange, ScanSource, key_ranges};

/// One key range of one collection, as `--plan` prints it and `--task` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// 0 to `of - 1`; names the task's files.
    pub index: u32,
    /// How many tasks the run has, so a task manifest of another plan is never taken.
    pub of: u32,
    pub collection: Collection,
    /// The range's first row key (inclusive), hex; absent for the table's beginning. Hex,
    /// because row keys are bytes and JSON strings are text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The row key the range stops before, hex; absent for the table's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

impl Task {
    pub fn parse(json: &str) -> Result<Self, ExtractorError> {
        let invalid = |reason: String| ExtractorError::InvalidArgument {
            flag: "--task",
            value: json.to_owned(),
            reason,
        };
        let task: Task = serde_json::from_str(json)
            .map_err(|e| invalid(format!("not a task --plan printed: {e}")))?;
        if task.index >= task.of {
            return Err(invalid(format!(
                "task {} of {} is out of range",
                task.index, task.of
            )));
        }
        task.range().map_err(invalid)?;
        Ok(task)
    }

    pub fn range(&self) -> Result<KeyRange, String> {
        let key = |hex: &Option<String>, what: &str| {
            hex.as_deref()
                .map(|h| from_hex(h).map_err(|e| format!("`{what}`: {e}")))
                .transpose()
        };
        Ok(KeyRange {
            start: key(&self.start, "start")?,
            stop: key(&self.stop, "stop")?,
        })
    }
}

/// What one task wrote: its range and its part of the collection's manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManifest {
    pub task: Task,
    pub extracted: CollectionManifest,
}

/// `_manifests/<id>/task-NNNNN.json`: beside the run's manifest, which only the commit writes.
pub fn task_manifest_key(correlation_id: &CorrelationId, index: u32) -> String {
    format!("_manifests/{correlation_id}/task-{index:05}.json")
}

/// The run's tasks: each collection's key space split at its region boundaries into about
/// `ranges` ranges (fewer when it has fewer regions), numbered across the run. A collection
/// read from a saved scan is one task.
pub async fn plan(
    config: &RunConfig,
    ranges_per_collection: usize,
) -> Result<Vec<Task>, ExtractorError> {
    let mut planned: Vec<(Collection, KeyRange)> = Vec::new();
    for job in &config.jobs {
        let split = match &job.source {
            ScanSource::Hbase { command, .. } => {
                key_ranges(command, &job.collection, ranges_per_collection).await?
            }
            ScanSource::Range { range, .. } => vec![range.clone()],
            ScanSource::File(_) => vec![KeyRange::ALL],
        };
        planned.extend(split.into_iter().map(|r| (job.collection.clone(), r)));
    }
    let of = u32::try_from(planned.len()).map_err(|_| ExtractorError::InvalidArgument {
        flag: "--ranges",
        value: ranges_per_collection.to_string(),
        reason: "the run would have more tasks than a task number holds".to_owned(),
    })?;
    Ok(planned
        .into_iter()
        .zip(0..)
        .map(|((collection, range), index)| Task {
            index,
            of,
            collection,
            start: range.start.as_deref().map(to_hex),
            stop: range.stop.as_deref().map(to_hex),
        })
        .collect())
}

/// Extracts one task's range and writes its task manifest. The task's files are named after
/// it, so a retry of the task (Spark's) replaces exactly its own earlier attempt's.
pub async fn run_task(
    config: &RunConfig,
    task: &Task,
    output: &Output,
    keys: Arc<KeyCache>,
) -> Result<TaskManifest, ExtractorError> {
    let job = job_of(config, &task.collection).ok_or_else(|| ExtractorError::InvalidArgument {
        flag: "--task",
        value: task.collection.name(),
        reason: "the task's collection is not one of the --collection flags".to_owned(),
    })?;
    let range = task
        .range()
        .map_err(|reason| ExtractorError::InvalidArgument {
            flag: "--task",
            value: format!("{task:?}"),
            reason,
        })?;
    let source = match &job.source {
        ScanSource::Hbase { command, .. } | ScanSource::Range { command, .. } => {
            ScanSource::Range {
                command: command.clone(),
                range,
            }
        }
        ScanSource::File(path) if range == KeyRange::ALL => ScanSource::File(path.clone()),
        ScanSource::File(path) => {
            return Err(ExtractorError::InvalidArgument {
                flag: "--task",
                value: format!("{task:?}"),
                reason: format!(
                    "a saved scan (`{}`) is one task; it cannot be read by range",
                    path.display()
                ),
            });
        }
    };
    let job = CollectionJob {
        source,
        ..job.clone()
    };
    let alone = RunConfig {
        collections_at_once: 1,
        jobs: Vec::new(),
        ..config.clone()
    };
    let run = run_folder(config.trigger_time_ms)?;
    let names = FileNames::task(&config.correlation_id, task.index);
    clear_stale(output, &job, &run, &names).await?;
    let extracted = extract(&alone, &job, &run, output, keys, &names, None).await?;
    let written = TaskManifest {
        task: task.clone(),
        extracted,
    };
    let body = serde_json::to_vec_pretty(&written)
        .map_err(|e| ExtractorError::encode("the task manifest", e))?;
    output
        .put(
            &task_manifest_key(&config.correlation_id, task.index),
            body,
            "application/json",
        )
        .await?;
    Ok(written)
}

/// Writes the run's manifest from the task manifests of tasks 0 to `of - 1`, once every one
/// is there and belongs to this plan. Before that it merges each collection's rejects into
/// the one rejects file the manifest names, and removes part files of this run that no task
/// manifest lists (a task attempt that failed after writing some), so the folder the table
/// reads holds exactly the manifest's files.
pub async fn commit(
    config: &RunConfig,
    of: u32,
    output: &Output,
) -> Result<Manifest, ExtractorError> {
    let cid = &config.correlation_id;
    let mut parts: Vec<TaskManifest> = Vec::with_capacity(of as usize);
    for index in 0..of {
        let key = task_manifest_key(cid, index);
        let body = output
            .get(&key)
            .await
            .map_err(|e| ExtractorError::Incomplete {
                reason: format!(
                    "task {index} of {of} left no task manifest at {}: {e}",
                    output.locate(&key)
                ),
            })?;
        let part: TaskManifest =
            serde_json::from_slice(&body).map_err(|e| ExtractorError::Incomplete {
                reason: format!("{} is not a task manifest: {e}", output.locate(&key)),
            })?;
        if job_of(config, &part.task.collection).is_none() {
            return Err(ExtractorError::Incomplete {
                reason: format!(
                    "{} extracted {}, which is not one of this run's --collection flags",
                    output.locate(&key),
                    part.task.collection
                ),
            });
        }
        if part.task.index != index || part.task.of != of {
            return Err(ExtractorError::Incomplete {
                reason: format!(
                    "{} is task {} of {}, not task {index} of {of}: it is another plan's",
                    output.locate(&key),
                    part.task.index,
                    part.task.of
                ),
            });
        }
        parts.push(part);
    }
    let run = run_folder(config.trigger_time_ms)?;
    let mut entries = Vec::with_capacity(config.jobs.len());
    for job in &config.jobs {
        let mine: Vec<CollectionManifest> = parts
            .iter()
            .filter(|p| p.task.collection == job.collection)
            .map(|p| p.extracted.clone())
            .collect();
        let entry = combine(config, job, &run, output, mine).await?;
        let keep: Vec<String> = entry.files.iter().map(|f| f.key.clone()).collect();
        let stray = output
            .clear(
                &data_folder(&job.collection, &run),
                &FileNames::run(cid).parts,
                &keep,
            )
            .await?;
        if stray > 0 {
            tracing::warn!(collection = %job.collection, stray, "removed part files no task manifest lists");
        }
        entries.push(entry);
    }
    publish(config, output, run, entries).await
}

/// One collection's parts (tasks, or ranges) as its manifest entry: [`merge`]d, held to
/// --max-rejects as a whole, and with the parts' rejects files joined into the one the
/// manifest names.
pub(crate) async fn combine(
    config: &RunConfig,
    job: &CollectionJob,
    run: &str,
    output: &Output,
    parts: Vec<CollectionManifest>,
) -> Result<CollectionManifest, ExtractorError> {
    let rejects: Vec<String> = parts
        .iter()
        .filter_map(|p| p.rejects_file.clone())
        .collect();
    let mut entry = merge(&job.collection, job.window, parts)?;
    if entry.rejected > config.max_rejects {
        return Err(ExtractorError::TooManyRejects {
            collection: job.collection.name(),
            rejected: entry.rejected,
            max: config.max_rejects,
            rejects_file: rejects
                .iter()
                .map(|k| output.locate(k))
                .collect::<Vec<_>>()
                .join(", "),
            first: "see the rejects files".to_owned(),
        });
    }
    if !rejects.is_empty() {
        entry.rejects_file = Some(merge_rejects(config, job, run, output, &rejects).await?);
    }
    Ok(entry)
}

/// One collection's tasks as one manifest entry. Every collection of the run must have at
/// least one task, and every task the collection's window.
pub fn merge(
    collection: &Collection,
    window: Window,
    parts: Vec<CollectionManifest>,
) -> Result<CollectionManifest, ExtractorError> {
    if parts.is_empty() {
        return Err(ExtractorError::Incomplete {
            reason: format!("no task extracted {collection}"),
        });
    }
    if let Some(other) = parts.iter().find(|p| p.window != window) {
        return Err(ExtractorError::Incomplete {
            reason: format!(
                "a task extracted {collection} over {} where the run's window is {window}",
                other.window
            ),
        });
    }
    let mut files: Vec<_> = parts.iter().flat_map(|p| p.files.clone()).collect();
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(CollectionManifest {
        collection: collection.clone(),
        window,
        records: parts.iter().map(|p| p.records).sum(),
        rejected: parts.iter().map(|p| p.rejected).sum(),
        smallest_timestamp_ms: parts.iter().filter_map(|p| p.smallest_timestamp_ms).min(),
        largest_timestamp_ms: parts.iter().filter_map(|p| p.largest_timestamp_ms).max(),
        bytes: files.iter().map(|f| f.size).sum(),
        files,
        rejects_file: None,
    })
}

/// The tasks' rejects files, one after another, as the collection's one rejects file (the
/// name a single-node run gives it). The tasks' own stay beside it, under `_rejects/`.
async fn merge_rejects(
    config: &RunConfig,
    job: &CollectionJob,
    run: &str,
    output: &Output,
    task_files: &[String],
) -> Result<String, ExtractorError> {
    let key = format!(
        "{}{}",
        rejects_folder(&job.collection, run),
        FileNames::run(&config.correlation_id).rejects
    );
    let tags = tags(job);
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut writer = output.create(&key, "application/x-ndjson", &tags).await?;
    for file in task_files {
        writer.write(output.get(file).await?).await?;
    }
    Ok(writer.finish().await?.key)
}

fn job_of<'a>(config: &'a RunConfig, collection: &Collection) -> Option<&'a CollectionJob> {
    config.jobs.iter().find(|j| j.collection == *collection)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err(format!("`{text}` is not hex: an odd number of digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{text}` is not hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use intraday_events::ManifestFile;

    fn collection() -> Collection {
        Collection::parse("db.core.claimant").expect("valid")
    }

    fn part(records: u64, rejected: u64, ts: (u64, u64), keys: &[&str]) -> CollectionManifest {
        CollectionManifest {
            collection: collection(),
            window: Window::new(1, 100).expect("window"),
            records,
            rejected,
            smallest_timestamp_ms: Some(ts.0),
            largest_timestamp_ms: Some(ts.1),
            bytes: 10 * keys.len() as u64,
            files: keys
                .iter()
                .map(|k| ManifestFile {
                    key: (*k).to_owned(),
                    size: 10,
                    sha256: "x".to_owned(),
                    records: 1,
                })
                .collect(),
            rejects_file: None,
        }
    }

    #[test]
    fn a_task_round_trips_with_binary_keys() {
        let task = Task {
            index: 2,
            of: 3,
            collection: collection(),
            start: Some(to_hex(&[0x00, 0xff, b'\\', b'"'])),
            stop: None,
        };
        let json = serde_json::to_string(&task).expect("json");
        assert_eq!(
            json,
            r#"{"index":2,"of":3,"collection":"db.core.claimant","start":"00ff5c22"}"#
        );
        let back = Task::parse(&json).expect("parses");
        assert_eq!(back, task);
        assert_eq!(
            back.range().expect("range"),
            KeyRange {
                start: Some(vec![0x00, 0xff, b'\\', b'"']),
                stop: None
            }
        );
    }

    #[test]
    fn a_bad_task_is_refused_naming_what_is_wrong() {
        let cases = [
            ("{", "not a task --plan printed"),
            (
                r#"{"index":3,"of":3,"collection":"db.core.claimant"}"#,
                "task 3 of 3 is out of range",
            ),
            (
                r#"{"index":0,"of":1,"collection":"db.core.claimant","start":"0g"}"#,
                "`start`: `0g` is not hex",
            ),
            (
                r#"{"index":0,"of":1,"collection":"db.core.claimant","stop":"abc"}"#,
                "an odd number of digits",
            ),
            (
                r#"{"index":0,"of":1,"collection":"core/claimant"}"#,
                "not a task --plan printed",
            ),
            (
                r#"{"index":0,"of":1,"collection":"db.core.claimant","extra":1}"#,
                "unknown field `extra`",
            ),
        ];
        for (json, want) in cases {
            let err = Task::parse(json).expect_err(json).to_string();
            assert!(err.contains(want), "{json}: {err}");
            assert!(err.starts_with("invalid --task"), "{err}");
        }
    }

    #[test]
    fn tasks_merge_into_the_collection_entry() {
        let window = Window::new(1, 100).expect("window");
        let merged = merge(
            &collection(),
            window,
            vec![
                part(3, 1, (10, 40), &["b-00000", "b-00001"]),
                part(2, 0, (5, 20), &["a-00000"]),
            ],
        )
        .expect("merged");
        assert_eq!(merged.records, 5);
        assert_eq!(merged.rejected, 1);
        assert_eq!(
            (merged.smallest_timestamp_ms, merged.largest_timestamp_ms),
            (Some(5), Some(40))
        );
        assert_eq!(merged.bytes, 30);
        let keys: Vec<&str> = merged.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["a-00000", "b-00000", "b-00001"]);

        let err = merge(&collection(), window, Vec::new()).expect_err("no task");
        assert!(
            err.to_string()
                .contains("no task extracted db.core.claimant"),
            "{err}"
        );
        let mut other = part(1, 0, (5, 5), &[]);
        other.window = Window::new(1, 50).expect("window");
        let err = merge(&collection(), window, vec![other]).expect_err("window");
        assert!(
            err.to_string().contains("where the run's window is"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_task_adds_no_timestamps() {
        let mut empty = part(0, 0, (0, 0), &[]);
        empty.smallest_timestamp_ms = None;
        empty.largest_timestamp_ms = None;
        let merged = merge(
            &collection(),
            Window::new(1, 100).expect("window"),
            vec![empty, part(1, 0, (7, 9), &["x"])],
        )
        .expect("merged");
        assert_eq!(
            (merged.smallest_timestamp_ms, merged.largest_timestamp_ms),
            (Some(7), Some(9))
        );
    }
}
