//! Where a collection's scan output comes from: `hbase shell` run as a child process, or a
//! file of saved shell output (replays, tests, benchmarks). Either is read as a stream.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use intraday_core::{Collection, Window};

use crate::ExtractorError;
use crate::scan::{ScanItem, ScanReader, ScanSummary, escape, unescape};

/// How much of the shell's stderr is kept for the error message.
const STDERR_TAIL: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanSource {
    /// Saved `hbase shell` output.
    File(PathBuf),
    /// `<command> shell -n`, given the scan on its standard input. With `parallelism` above
    /// 1, the key space is split at the table's region boundaries and that many range scans
    /// run at once.
    Hbase { command: String, parallelism: usize },
    /// One range of the table in one `<command> shell -n`: one of a collection's ranges
    /// (`run::extract_in_ranges`), or a task of a run spread over a Spark application.
    Range { command: String, range: KeyRange },
}

/// Ranges per scan at once: a few each, so a slow range does not leave the others idle.
pub const RANGES_PER_SCAN: usize = 3;

/// The shell command that scans a collection's window. Collection names hold only letters,
/// digits and `_`, and the window two integers, so nothing here needs quoting beyond the
/// table name's single quotes.
pub fn scan_command(collection: &Collection, window: Window) -> String {
    range_scan_command(collection, window, &KeyRange::ALL)
}

/// Part of a table's key space: from `start` (inclusive) to `stop` (exclusive); `None` is the
/// table's beginning or end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Option<Vec<u8>>,
    pub stop: Option<Vec<u8>>,
}

impl KeyRange {
    pub const ALL: KeyRange = KeyRange {
        start: None,
        stop: None,
    };

    /// `rows `a` to `b``, for messages.
    pub fn describe(&self) -> String {
        let bound = |k: &Option<Vec<u8>>, none: &str| {
            k.as_deref()
                .map_or(none.to_owned(), |k| format!("`{}`", escape(k)))
        };
        format!(
            "rows {} to {}",
            bound(&self.start, "the first"),
            bound(&self.stop, "the last")
        )
    }
}

/// The scan of one range, with STARTROW/STOPROW as Ruby double-quoted strings: printable
/// bytes as they are, `"`, `#` and `\` and every other byte as `\xHH`, which the shell's
/// `to_java_bytes` turns back into exactly these bytes.
pub fn range_scan_command(collection: &Collection, window: Window, range: &KeyRange) -> String {
    let mut options = format!("TIMERANGE => [{}, {}]", window.start_ms(), window.end_ms());
    if let Some(start) = &range.start {
        options.push_str(&format!(", STARTROW => \"{}\"", ruby_bytes(start)));
    }
    if let Some(stop) = &range.stop {
        options.push_str(&format!(", STOPROW => \"{}\"", ruby_bytes(stop)));
    }
    format!("scan '{}', {{{options}}}", collection.hbase_table())
}

fn ruby_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && !matches!(b, b'"' | b'#' | b'\\') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Region boundaries merged into about `parts` ranges of as many regions each, covering the
/// whole key space in order.
pub fn ranges(splits: &[Vec<u8>], parts: usize) -> Vec<KeyRange> {
    let regions = splits.len() + 1;
    let parts = parts.clamp(1, regions);
    let mut bounds: Vec<Option<Vec<u8>>> = Vec::with_capacity(parts + 1);
    bounds.push(None);
    for i in 1..parts {
        // The first key of the i-th group of regions.
        let region = i * regions / parts;
        bounds.push(Some(splits[region - 1].clone()));
    }
    bounds.push(None);
    bounds
        .windows(2)
        .map(|w| KeyRange {
            start: w[0].clone(),
            stop: w[1].clone(),
        })
        .collect()
}

/// `get_splits` output: `Total number of splits = N`, then the N - 1 split keys.
pub fn parse_splits(output: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut lines = output.lines();
    let total = lines
        .by_ref()
        .find_map(|l| l.trim().strip_prefix("Total number of splits = "))
        .ok_or("no `Total number of splits = N` line")?;
    let regions: usize = total
        .trim()
        .parse()
        .map_err(|e| format!("`Total number of splits = {total}`: {e}"))?;
    let keys: Vec<Vec<u8>> = lines
        .take(regions.saturating_sub(1))
        .map(|l| unescape(l.trim_end_matches('\r').as_bytes()))
        .collect::<Result<_, _>>()?;
    if keys.len() + 1 != regions {
        return Err(format!(
            "{regions} regions announced but {} split keys printed",
            keys.len()
        ));
    }
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        return Err("the split keys are not in increasing order".to_owned());
    }
    Ok(keys)
}

/// A scan being read, pulled an item at a time by whichever worker is free, so no thread
/// of its own stands between the shell's output and the workers (BENCH.md, "A scan read by
/// its workers"). [`OpenScan::finish`] says how it ended; dropped before then, its shell
/// is stopped.
pub struct OpenScan {
    reader: ScanReader<Box<dyn Read + Send>>,
    shell: Option<Shell>,
}

/// The `hbase shell` a scan reads, and what its end is checked against.
struct Shell {
    name: String,
    table: String,
    running: Running,
    stderr: Option<JoinHandle<String>>,
}

impl OpenScan {
    /// Opens the scan: the saved file, or its shell started with the scan on its input.
    pub fn open(
        source: &ScanSource,
        collection: &Collection,
        window: Window,
    ) -> Result<Self, ExtractorError> {
        match source {
            ScanSource::File(path) => {
                let file = File::open(path)
                    .map_err(|e| ExtractorError::file("opening the scan file", path, e))?;
                Ok(Self {
                    reader: ScanReader::new(
                        format!("scan file `{}`", path.display()),
                        Box::new(file) as Box<dyn Read + Send>,
                    ),
                    shell: None,
                })
            }
            // Ranges are the run's to split (`run::extract_in_ranges`): here the whole table.
            ScanSource::Hbase { command, .. } => {
                Self::shell(command, collection, window, &KeyRange::ALL)
            }
            ScanSource::Range { command, range } => Self::shell(command, collection, window, range),
        }
    }

    /// One scan in its own shell.
    fn shell(
        command: &str,
        collection: &Collection,
        window: Window,
        range: &KeyRange,
    ) -> Result<Self, ExtractorError> {
        let table = collection.hbase_table();
        let name = format!("{command} shell -n");
        let mut child = spawn_shell(command, &table)?;
        let script = format!("{}\nexit\n", range_scan_command(collection, window, range));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(collect_tail);
        let shell = Shell {
            name,
            table,
            running: Running(Some(child)),
            stderr,
        };
        // The script is a few dozen bytes: it fits the pipe, so writing it before reading
        // cannot deadlock.
        if let Some(mut stdin) = stdin
            && let Err(e) = stdin.write_all(script.as_bytes())
        {
            return Err(shell.failed("its input could not be written".to_owned(), e.to_string()));
        }
        let Some(stdout) = stdout else {
            return Err(shell.failed("no output pipe".to_owned(), String::new()));
        };
        let source_name = format!("`{}` scan of {}", shell.name, shell.table);
        Ok(Self {
            reader: ScanReader::new(source_name, Box::new(stdout) as Box<dyn Read + Send>),
            shell: Some(shell),
        })
    }

    /// The next cell or reject; `None` at the end of the output.
    pub fn next_item(&mut self) -> Result<Option<ScanItem>, ExtractorError> {
        self.reader.next_item()
    }

    /// How the scan ended, given how reading it ended (`Ok(false)`: the caller stopped
    /// before the end, so its shell is stopped rather than awaited). A shell that failed
    /// (its exit status, an `ERROR` line) is the error reported, whatever reading said: it
    /// is why the output was cut short.
    pub fn finish(self, read: Result<bool, ExtractorError>) -> Result<ScanSummary, ExtractorError> {
        let summary = self.reader.summary();
        if let Some(mut shell) = self.shell {
            if matches!(read, Ok(false)) {
                shell.running.kill();
            }
            let status = shell
                .running
                .wait()
                .map_err(|e| shell.failed("it could not be waited for".to_owned(), e))?;
            let stderr_tail = shell
                .stderr
                .take()
                .and_then(|handle| handle.join().ok())
                .unwrap_or_default();
            if !status.success() {
                return Err(shell.failed(status.to_string(), stderr_tail));
            }
            if let Some(line) = stderr_tail.lines().find(|l| l.starts_with("ERROR")) {
                let status = format!("exit 0 but it reported `{line}`");
                return Err(shell.failed(status, stderr_tail));
            }
        }
        read.map(|_| summary)
    }
}

impl Shell {
    fn failed(&self, status: String, stderr_tail: String) -> ExtractorError {
        ExtractorError::HbaseFailed {
            command: self.name.clone(),
            table: self.table.clone(),
            status,
            stderr_tail,
        }
    }
}

/// The table's split keys, from `get_splits` in its own shell.
pub fn get_splits(command: &str, collection: &Collection) -> Result<Vec<Vec<u8>>, ExtractorError> {
    let table = collection.hbase_table();
    let script = format!("get_splits '{table}'\nexit\n");
    let (status, stdout, stderr_tail) = run_shell(command, &table, &script)?;
    let failed = |status: String| ExtractorError::HbaseFailed {
        command: format!("{command} shell -n (get_splits)"),
        table: table.clone(),
        status,
        stderr_tail: stderr_tail.clone(),
    };
    if !status.success() {
        return Err(failed(status.to_string()));
    }
    if let Some(line) = stdout
        .lines()
        .chain(stderr_tail.lines())
        .find(|l| l.starts_with("ERROR"))
    {
        return Err(failed(format!("exit 0 but it reported `{line}`")));
    }
    parse_splits(&stdout)
        .map_err(|reason| failed(format!("its output is not get_splits': {reason}")))
}

/// The table's key space cut at its region boundaries into about `parts` ranges, the
/// shell's `get_splits` run off the async threads.
pub async fn key_ranges(
    command: &str,
    collection: &Collection,
    parts: usize,
) -> Result<Vec<KeyRange>, ExtractorError> {
    let (command, collection) = (command.to_owned(), collection.clone());
    let splits = tokio::task::spawn_blocking(move || get_splits(&command, &collection))
        .await
        .map_err(|e| ExtractorError::Worker(e.to_string()))??;
    tracing::info!(regions = splits.len() + 1, "table split at its regions");
    Ok(ranges(&splits, parts))
}

/// `<command> shell -n` with every stream piped. `-n` (non-interactive) makes the shell exit
/// non-zero when a command fails, instead of printing the error and carrying on with status 0.
fn spawn_shell(command: &str, table: &str) -> Result<Child, ExtractorError> {
    Command::new(command)
        .args(["shell", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ExtractorError::HbaseStart {
            command: format!("{command} shell -n"),
            table: table.to_owned(),
            reason: e.to_string(),
        })
}

/// Runs a short script to completion, keeping its output.
fn run_shell(
    command: &str,
    table: &str,
    script: &str,
) -> Result<(std::process::ExitStatus, String, String), ExtractorError> {
    let mut child = spawn_shell(command, table)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ExtractorError::HbaseStart {
            command: format!("{command} shell -n"),
            table: table.to_owned(),
            reason: e.to_string(),
        })?;
    // The last bytes, as `collect_tail` keeps them: a cut through a character is replaced,
    // not an empty tail.
    let tail_from = out.stderr.len().saturating_sub(STDERR_TAIL);
    let tail = String::from_utf8_lossy(&out.stderr[tail_from..]).into_owned();
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        tail,
    ))
}

/// A failed scan under the name of its range, for the error message.
pub fn name_range(e: ExtractorError, range: &KeyRange) -> ExtractorError {
    match e {
        ExtractorError::HbaseFailed {
            command,
            table,
            status,
            stderr_tail,
        } => ExtractorError::HbaseFailed {
            command,
            table,
            status: format!("{status} (scan of {})", range.describe()),
            stderr_tail,
        },
        ExtractorError::ScanFailed {
            source_name,
            reason,
        } => ExtractorError::ScanFailed {
            source_name: format!("{source_name} (scan of {})", range.describe()),
            reason,
        },
        other => other,
    }
}

/// A child that is killed and reaped if we stop early, however we stop.
struct Running(Option<Child>);

impl Running {
    fn kill(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
        }
    }

    fn wait(&mut self) -> Result<std::process::ExitStatus, String> {
        match self.0.take() {
            Some(mut child) => child.wait().map_err(|e| e.to_string()),
            None => Err("the child was already reaped".to_owned()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Drains a pipe on its own thread (so the child never blocks on a full stderr) and keeps
/// the last few KiB.
fn collect_tail(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut tail: VecDeque<u8> = VecDeque::with_capacity(STDERR_TAIL);
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            tail.extend(&chunk[..n]);
            while tail.len() > STDERR_TAIL {
                tail.pop_front();
            }
        }
        String::from_utf8_lossy(&tail.into_iter().collect::<Vec<_>>()).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_command_is_the_originals() {
        let c = Collection::parse("db.core.claimant").expect("valid");
        let w = Window::new(1_710_149_400_001, 1_710_153_000_000).expect("window");
        assert_eq!(
            scan_command(&c, w),
            "scan 'core:claimant', {TIMERANGE => [1710149400001, 1710153000000]}"
        );
    }

    #[test]
    fn a_range_scan_names_its_rows_as_ruby_bytes() {
        let c = Collection::parse("db.core.claimant").expect("valid");
        let w = Window::new(1, 2).expect("window");
        let range = KeyRange {
            start: Some(b"a\"#\\\x00z".to_vec()),
            stop: Some(vec![0xff]),
        };
        assert_eq!(
            range_scan_command(&c, w, &range),
            r#"scan 'core:claimant', {TIMERANGE => [1, 2], STARTROW => "a\x22\x23\x5C\x00z", STOPROW => "\xFF"}"#
        );
    }

    #[test]
    fn regions_merge_into_contiguous_ranges_covering_the_table() {
        let splits: Vec<Vec<u8>> = (1..10u8).map(|i| vec![i]).collect(); // 10 regions
        let r = ranges(&splits, 3);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].start, None);
        assert_eq!(r[2].stop, None);
        for pair in r.windows(2) {
            assert_eq!(pair[0].stop, pair[1].start, "no gap, no overlap");
        }
        // More parts than regions: one range per region.
        assert_eq!(ranges(&splits[..2], 9).len(), 3);
        // No splits: the whole table.
        assert_eq!(ranges(&[], 4), vec![KeyRange::ALL]);
    }

    #[test]
    fn get_splits_output_is_read_and_checked() {
        let out = "HBase Shell\nTotal number of splits = 3\na\nb\\x00\nTook 0.0100 seconds\n";
        assert_eq!(
            parse_splits(out).expect("splits"),
            vec![b"a".to_vec(), b"b\x00".to_vec()]
        );
        assert!(parse_splits("Total number of splits = 3\na\n").is_err());
        assert!(parse_splits("Total number of splits = 3\nb\na\nx").is_err());
        assert!(parse_splits("nothing").is_err());
        assert_eq!(
            parse_splits("Total number of splits = 1\n").expect("one"),
            Vec::<Vec<u8>>::new()
        );
    }
}
