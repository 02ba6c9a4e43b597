//! Where a collection's scan output comes from: `hbase shell` run as a child process, or a
//! file of saved shell output (replays, tests, benchmarks). Either is read as a stream.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use intraday_core::{Collection, Window};

use crate::ExtractorError;
use crate::scan::{ScanItem, ScanReader, ScanSummary};

const READ_BUFFER: usize = 1024 * 1024;
/// How much of the shell's stderr is kept for the error message.
const STDERR_TAIL: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanSource {
    /// Saved `hbase shell` output.
    File(PathBuf),
    /// `<command> shell -n`, given the scan on its standard input.
    Hbase { command: String },
}

/// The shell command that scans a collection's window. Collection names hold only letters,
/// digits and `_`, and the window two integers, so nothing here needs quoting beyond the
/// table name's single quotes.
pub fn scan_command(collection: &Collection, window: Window) -> String {
    format!(
        "scan '{}', {{TIMERANGE => [{}, {}]}}",
        collection.hbase_table(),
        window.start_ms(),
        window.end_ms()
    )
}

/// Reads the scan, handing each item to `emit`; `emit` returns false to stop early (the
/// consumer has failed). Returns the scan's totals once the whole output checked out.
pub fn read_scan(
    source: &ScanSource,
    collection: &Collection,
    window: Window,
    emit: impl FnMut(ScanItem) -> bool,
) -> Result<ScanSummary, ExtractorError> {
    match source {
        ScanSource::File(path) => {
            let file = File::open(path)
                .map_err(|e| ExtractorError::file("opening the scan file", path, e))?;
            let reader = ScanReader::new(
                format!("scan file `{}`", path.display()),
                BufReader::with_capacity(READ_BUFFER, file),
            );
            pump(reader, emit).map(|(summary, _)| summary)
        }
        ScanSource::Hbase { command } => hbase_scan(command, collection, window, emit),
    }
}

/// Feeds items to `emit` until the output ends or `emit` says stop; says which.
fn pump<R: BufRead>(
    mut reader: ScanReader<R>,
    mut emit: impl FnMut(ScanItem) -> bool,
) -> Result<(ScanSummary, bool), ExtractorError> {
    while let Some(item) = reader.next_item()? {
        if !emit(item) {
            return Ok((reader.summary(), false));
        }
    }
    Ok((reader.summary(), true))
}

fn hbase_scan(
    command: &str,
    collection: &Collection,
    window: Window,
    emit: impl FnMut(ScanItem) -> bool,
) -> Result<ScanSummary, ExtractorError> {
    let table = collection.hbase_table();
    let shell = format!("{command} shell -n");
    let failed = |status: String, stderr_tail: String| ExtractorError::HbaseFailed {
        command: shell.clone(),
        table: table.clone(),
        status,
        stderr_tail,
    };
    // `-n` (non-interactive) makes the shell exit non-zero when a command fails, instead of
    // printing the error and carrying on with status 0.
    let mut child = Command::new(command)
        .args(["shell", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ExtractorError::HbaseStart {
            command: shell.clone(),
            table: table.clone(),
            reason: e.to_string(),
        })?;
    let script = format!("{}\nexit\n", scan_command(collection, window));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take().map(collect_tail);
    let mut running = Running(Some(child));
    // The script is a few dozen bytes: it fits the pipe, so writing it before reading
    // cannot deadlock.
    if let Some(mut stdin) = stdin {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| failed("its input could not be written".to_owned(), e.to_string()))?;
    }
    let Some(stdout) = stdout else {
        return Err(failed("no output pipe".to_owned(), String::new()));
    };
    let reader = ScanReader::new(
        format!("`{shell}` scan of {table}"),
        BufReader::with_capacity(READ_BUFFER, stdout),
    );
    let scanned = pump(reader, emit);
    if matches!(scanned, Ok((_, false))) {
        running.kill();
    }
    let status = running
        .wait()
        .map_err(|e| failed("it could not be waited for".to_owned(), e))?;
    let stderr_tail = stderr
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default();
    if !status.success() {
        return Err(failed(status.to_string(), stderr_tail));
    }
    if let Some(line) = stderr_tail.lines().find(|l| l.starts_with("ERROR")) {
        return Err(failed(
            format!("exit 0 but it reported `{line}`"),
            stderr_tail,
        ));
    }
    scanned.map(|(summary, _)| summary)
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
}
