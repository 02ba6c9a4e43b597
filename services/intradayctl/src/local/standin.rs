//! The EMR stand-in. moto records clusters but runs nothing and emits no events, so locally
//! this does what EMR would: for each new Intraday cluster it runs the real extractor binary
//! with the step's own arguments (saved scans stand in for `hbase shell`), puts the cluster
//! and step state changes on the event bus, where the template's rules route them, and
//! leaves the replica's `meta_<clusterId>/` folder in the HBase root for the reaper.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use intraday_aws::emr::ACTIVE_STATES;
use intraday_aws::{Bus, Emr, Objects};
use intraday_core::S3Uri;
use intraday_extractor::synth::{self, SynthKey};
use serde_json::json;
use tokio::sync::watch;

use crate::CtlError;

pub struct StandIn {
    pub emr: Emr,
    pub bus: Bus,
    pub objects: Objects,
    pub hbase_root: S3Uri,
    pub keys: Vec<SynthKey>,
    pub extractor: PathBuf,
    pub dks_url: String,
    pub endpoint: String,
    pub region: String,
    pub workdir: PathBuf,
    /// The end of this demo's run ids: clusters of other runs (another demo on the same moto
    /// server) are not this stand-in's to run.
    pub runs_suffix: String,
    /// The stand-in `hbase` command the step scans through; without it, saved scans.
    pub hbase: Option<PathBuf>,
    /// What the step runs with (on EMR, the nodes' instance profile); `None` passes on this
    /// process's environment.
    pub credentials: Option<intraday_aws::Credentials>,
    /// Where a Spark step (the launcher's `engine` `spark`) is submitted; without it, only
    /// single-node steps run.
    pub spark: Option<LocalSpark>,
}

/// A local Spark standing in for the cluster's YARN.
pub struct LocalSpark {
    pub submit: PathBuf,
    /// The Spark driver's text, as the project ships it (the launcher's step names the path
    /// the bootstrap action installs it at on the primary).
    pub driver: &'static str,
}

/// How much of a failed step's stderr is shown: Spark's log is long, and its end says why.
const STDERR_SHOWN: usize = 4 * 1024;

/// What the stand-in made of a cluster it listed.
enum Judged {
    /// Its step ran, and its events are on the bus.
    Done,
    /// Not this demo's: another demo's, or not Intraday's.
    NotOurs,
    /// Not whole yet (moto still creating it): look again.
    NotYet,
}

/// Records per collection and run.
const RECORDS: u64 = 150;

impl StandIn {
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut seen = BTreeSet::new();
        loop {
            if *stop.borrow() {
                return;
            }
            match self.emr.list(&ACTIVE_STATES, None).await {
                Ok(clusters) => {
                    for cluster in clusters {
                        if !seen.insert(cluster.id.clone()) {
                            continue;
                        }
                        match self.step(&cluster.id).await {
                            Ok(Judged::Done | Judged::NotOurs) => {}
                            // Not whole yet: look again at the next poll.
                            Ok(Judged::NotYet) => {
                                seen.remove(&cluster.id);
                            }
                            Err(e) => {
                                // EMR runs a step whatever its callers' luck: try again while
                                // the cluster is still active.
                                eprintln!(
                                    "  EMR stand-in: cluster {}: {e}; trying again",
                                    cluster.id
                                );
                                seen.remove(&cluster.id);
                            }
                        }
                    }
                }
                Err(e) => eprintln!("  EMR stand-in: listing clusters: {e}"),
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    }

    async fn cluster_event(
        &self,
        id: &str,
        state: &str,
        code: &str,
        message: &str,
    ) -> Result<(), CtlError> {
        let severity = if state == "TERMINATED_WITH_ERRORS" {
            "CRITICAL"
        } else {
            "INFO"
        };
        let reason = json!({"code": code, "message": message}).to_string();
        let detail = json!({"severity": severity, "stateChangeReason": reason, "name": "intraday-incremental",
                            "clusterId": id, "state": state, "message": format!("Amazon EMR cluster {id} is {state}.")});
        Ok(self
            .bus
            .put("aws.emr", "EMR Cluster State Change", &detail)
            .await?)
    }

    async fn step_event(&self, id: &str, step: &str, state: &str) -> Result<(), CtlError> {
        let severity = if state == "FAILED" { "ERROR" } else { "INFO" };
        let detail = json!({"severity": severity, "actionOnFailure": "TERMINATE_CLUSTER", "stepId": step,
                            "name": intraday_monitor::STEP_NAME, "clusterId": id, "state": state,
                            "message": format!("Step {step} (intraday-extract) in Amazon EMR cluster {id} is {state}.")});
        Ok(self
            .bus
            .put("aws.emr", "EMR Step Status Change", &detail)
            .await?)
    }

    async fn step(&self, id: &str) -> Result<Judged, CtlError> {
        let info = self.emr.describe(id).await?;
        // moto lists a cluster as RunJobFlow creates it and tags it afterwards (its
        // `run_job_flow` response handler calls `add_tags` last), and serves requests on
        // several threads: a cluster seen untagged may be one of ours mid-creation. EMR's
        // RunJobFlow is atomic; this is the emulator's window, so look again.
        if info.tags.is_empty() {
            return Ok(Judged::NotYet);
        }
        let ours = info
            .intraday_run()
            .is_some_and(|run| run.ends_with(&self.runs_suffix));
        if !ours {
            return Ok(Judged::NotOurs);
        }
        let Some(step) = self
            .emr
            .steps(id)
            .await?
            .into_iter()
            .find(|s| s.name == intraday_monitor::STEP_NAME)
        else {
            return Ok(Judged::NotYet);
        };
        self.cluster_event(id, "RUNNING", "", "").await?;
        self.step_event(id, &step.id, "RUNNING").await?;
        self.leave_replica_metadata(id).await?;

        let dir = self.workdir.join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| CtlError::Other(format!("{}: {e}", dir.display())))?;
        let spark_step = step.args.first().is_some_and(|a| a == "spark-submit");
        let (program, mut args) = if spark_step {
            self.spark_command(&step.args, &dir)?
        } else {
            (
                self.extractor.clone(),
                step.args.iter().skip(1).cloned().collect(),
            )
        };
        let data = dir.join("hbase");
        for (i, pair) in step
            .args
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] == "--collection")
        {
            let spec = &pair[1];
            let mut parts = spec.rsplitn(3, ':');
            let end: u64 = parts.next().and_then(|e| e.parse().ok()).unwrap_or(0);
            let start: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let collection = parts.next().unwrap_or_default().to_owned();
            let records = self.records(start, end, i as u64);
            match &self.hbase {
                // HBase as the step meets it: `hbase shell` scans of the stored rows, in
                // ranges of the table's regions.
                Some(_) => self.store_table(&data, &collection, &records)?,
                None => {
                    let path = dir.join(format!("scan-{i}.txt"));
                    self.write_scan(&path, &records, i as u64)?;
                    args.push("--scan-file".into());
                    args.push(format!("{collection}={}", path.display()));
                }
            }
        }
        if let Some(hbase) = &self.hbase {
            args.push("--hbase-command".into());
            args.push(hbase.display().to_string());
            // A Spark task scans one range; the driver spreads the ranges over its cores.
            if !spark_step {
                args.push("--scan-parallelism".into());
                args.push("2".into());
            }
        }
        args.extend([
            "--dks-url".into(),
            self.dks_url.clone(),
            "--endpoint-url".into(),
            self.endpoint.clone(),
            "--region".into(),
            self.region.clone(),
        ]);
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(intraday_testkit::hbase::DATA_VAR, &data)
            .env_remove(intraday_testkit::hbase::FAIL_VAR);
        if let Some(credentials) = &self.credentials {
            command
                .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
                .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
                .env_remove("AWS_SESSION_TOKEN");
            if let Some(token) = credentials.session_token() {
                command.env("AWS_SESSION_TOKEN", token);
            }
        }
        let out = command
            .env("RUST_LOG", "warn")
            .output()
            .await
            .map_err(|e| CtlError::Other(format!("cannot run {}: {e}", program.display())))?;
        // EMR terminates the cluster after its last step; the reaper checks it is terminated.
        self.emr.terminate(id).await?;
        if out.status.success() {
            self.step_event(id, &step.id, "COMPLETED").await?;
            self.cluster_event(id, "TERMINATED", "ALL_STEPS_COMPLETED", "Steps completed")
                .await?;
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr.trim();
            let shown = stderr.len().saturating_sub(STDERR_SHOWN);
            let shown = (shown..stderr.len())
                .find(|&i| stderr.is_char_boundary(i))
                .unwrap_or(stderr.len());
            eprintln!(
                "  the step on {id} failed ({}): {}",
                program.display(),
                &stderr[shown..]
            );
            self.step_event(id, &step.id, "FAILED").await?;
            self.cluster_event(
                id,
                "TERMINATED_WITH_ERRORS",
                "STEP_FAILURE",
                "Shut down as step failed",
            )
            .await?;
        }
        Ok(Judged::Done)
    }

    /// The launcher's Spark step as a local Spark runs it: the same arguments, but the master
    /// is `local[2,2]` (two task slots, as a core node's YARN gives several; each task tried
    /// twice), and the driver and the extractor are this machine's, where the step names
    /// their paths on the nodes.
    fn spark_command(
        &self,
        step_args: &[String],
        dir: &Path,
    ) -> Result<(PathBuf, Vec<String>), CtlError> {
        let Some(spark) = &self.spark else {
            return Err(CtlError::Other(
                "the step is a Spark application, and this demo has no Spark: run it with --engine spark".into(),
            ));
        };
        let driver = dir.join("intraday_spark.py");
        std::fs::write(&driver, spark.driver)
            .map_err(|e| CtlError::Other(format!("{}: {e}", driver.display())))?;
        let extractor_at = step_args.iter().position(|a| a == "--extractor");
        let Some(driver_at) = extractor_at.and_then(|i| i.checked_sub(1)) else {
            return Err(CtlError::Other(format!(
                "the Spark step names no `--extractor` after its driver: {step_args:?}"
            )));
        };
        // The web UI would take a port per application; nothing here looks at it.
        let mut args = vec!["--conf".to_owned(), "spark.ui.enabled=false".to_owned()];
        for (i, arg) in step_args.iter().enumerate().skip(1) {
            let after = |flag: &str| step_args[i - 1] == flag;
            args.push(if after("--master") {
                // Each task tried at most twice, as `spark.task.maxFailures=2` on YARN.
                "local[2,2]".to_owned()
            } else if i == driver_at {
                driver.display().to_string()
            } else if after("--extractor") && Some(i - 1) == extractor_at {
                self.extractor.display().to_string()
            } else {
                arg.clone()
            });
        }
        Ok((spark.submit.clone(), args))
    }

    /// What HBase changed in the window: encrypted records with cell timestamps inside it.
    fn records(&self, start: u64, end: u64, seed: u64) -> Vec<synth::SynthRecord> {
        let count = RECORDS.min(end.saturating_sub(start) / 3);
        let first = end.saturating_sub(count * 3 + 1).max(start);
        synth::records(count as usize, 1024, self.keys.len(), first, seed ^ end)
    }

    fn write_scan(
        &self,
        path: &Path,
        records: &[synth::SynthRecord],
        seed: u64,
    ) -> Result<(), CtlError> {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CtlError::Other(format!("{}: {e}", path.display())))?,
        );
        synth::write_scan(&mut file, records, &self.keys, seed)
            .map_err(|e| CtlError::Other(format!("{}: {e}", path.display())))
    }

    /// The records as the HBase table `<db>:<table>` holds them, in three regions.
    fn store_table(
        &self,
        data: &Path,
        collection: &str,
        records: &[synth::SynthRecord],
    ) -> Result<(), CtlError> {
        let table = intraday_core::Collection::parse(collection)?.hbase_table();
        let cells: Vec<intraday_testkit::hbase::StoredCell> = records
            .iter()
            .enumerate()
            .map(|(i, r)| intraday_testkit::hbase::StoredCell {
                row: r.row.clone(),
                timestamp_ms: r.timestamp_ms,
                value: synth::envelope(
                    &r.id_json,
                    &self.keys[r.key_index],
                    [(i % 251) as u8; 16],
                    &r.document,
                )
                .into_bytes(),
            })
            .collect();
        let mut rows: Vec<&[u8]> = cells.iter().map(|c| c.row.as_slice()).collect();
        rows.sort_unstable();
        let splits: Vec<Vec<u8>> = [rows.len() / 3, 2 * rows.len() / 3]
            .iter()
            .filter_map(|&i| rows.get(i).filter(|_| i > 0).map(|r| r.to_vec()))
            .collect();
        intraday_testkit::hbase::store_table(data, &table, &cells, &splits)
            .map_err(|e| CtlError::Other(format!("{}: {e}", data.display())))
    }

    async fn leave_replica_metadata(&self, id: &str) -> Result<(), CtlError> {
        for key in [
            format!("data/hbase/meta_{id}/info/region-0"),
            format!("data/hbase/meta_{id}/.tabledesc/table"),
            format!("data/hbase/meta_{id}_$folder$"),
        ] {
            self.objects
                .put(
                    &self.hbase_root.join(&key)?,
                    Vec::new(),
                    "application/octet-stream",
                    &[],
                )
                .await?;
        }
        Ok(())
    }
}
