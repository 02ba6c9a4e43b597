//! A stand-in for the `hbase` command: `hbase shell -n` reading a script on stdin and
//! answering `scan` and `get_splits` from stored rows as HBase 2.x's shell prints them, for
//! the extractor's tests, its benchmark and `intradayctl local demo`.
//!
//! What it prints, from hbase-shell's `formatter.rb`, `table.rb` and `get_splits.rb`: with
//! stdout not a terminal the formatter has width 0, so a scan is the header
//! `ROW  COLUMN+CELL`, one line per cell ` <row> column=<family>:<qualifier>,
//! timestamp=<ms>, value=<value>`, then `N row(s)` and `Took X seconds`. Row keys and values
//! are in `Bytes.toStringBinary` form. `get_splits` prints `Total number of splits = N`
//! (regions, so split keys + 1) and each split key, string-binary, one per line.
//!
//! Rows live in a directory (`INTRADAY_HBASE_DATA`): per table `<ns>:<table>/cells`, one
//! cell per line `<row>\t<timestamp>\t<value>` in string-binary form, sorted by row; and
//! optionally `<ns>:<table>/splits`, one split key per line. `INTRADAY_HBASE_FAIL` makes
//! scans fail on demand (see [`Fault`]).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The variable naming the directory of stored rows.
pub const DATA_VAR: &str = "INTRADAY_HBASE_DATA";
/// The variable listing faults: `<kind>@<start row>` or `<kind>@*`, comma-separated, each
/// optionally ending `#once` (fail the first such scan only).
pub const FAIL_VAR: &str = "INTRADAY_HBASE_FAIL";
/// The variable pacing each scan to at most this many cells a second, as a shell slower than
/// the extractor would (the benchmark's range-scan rows): unset, a scan goes as fast as it
/// can.
pub const RATE_VAR: &str = "INTRADAY_HBASE_CELLS_PER_SECOND";
/// The stand-in binary's name, beside the test binaries (`target/<profile>/`).
pub const BINARY: &str = "intraday-hbase-standin";

/// One stored cell, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredCell {
    pub row: Vec<u8>,
    pub timestamp_ms: u64,
    pub value: Vec<u8>,
}

/// Writes a table's cells (sorted here by row, as HBase keeps them) and its split keys.
pub fn store_table(
    dir: &Path,
    table: &str,
    cells: &[StoredCell],
    splits: &[Vec<u8>],
) -> std::io::Result<()> {
    let at = dir.join(table);
    std::fs::create_dir_all(&at)?;
    let mut sorted: Vec<&StoredCell> = cells.iter().collect();
    sorted.sort_by(|a, b| a.row.cmp(&b.row).then(b.timestamp_ms.cmp(&a.timestamp_ms)));
    let mut out = std::io::BufWriter::new(std::fs::File::create(at.join("cells"))?);
    for cell in sorted {
        writeln!(
            out,
            "{}\t{}\t{}",
            to_string_binary(&cell.row),
            cell.timestamp_ms,
            to_string_binary(&cell.value)
        )?;
    }
    out.flush()?;
    let mut keys: Vec<&Vec<u8>> = splits.iter().collect();
    keys.sort();
    let text: String = keys
        .iter()
        .map(|k| format!("{}\n", to_string_binary(k)))
        .collect();
    std::fs::write(at.join("splits"), text)
}

/// `Bytes.toStringBinary`: bytes 0x20 to 0x7E as they are except the backslash, every other
/// byte as `\xHH`. Written here apart from the extractor's own (`scan::escape`) on purpose:
/// the stand-in is the extractor's oracle, so it must not share the extractor's mistakes.
pub fn to_string_binary(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// `Bytes.toBytesBinary`, the inverse; also what a Ruby double-quoted literal of printable
/// characters and `\xHH` escapes means.
pub fn to_bytes_binary(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = bytes
                .get(i + 1..i + 4)
                .filter(|h| h[0] == b'x')
                .and_then(|h| std::str::from_utf8(&h[1..]).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{text}`: a backslash that is not \\xHH"))?;
            out.push(hex);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// How a scan fails on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// `ERROR: …` on stderr and exit status 1, after the header.
    Exit,
    /// `ERROR: …` on stdout after some cells, then exit status 0 (a shell that carries on).
    Error,
    /// Output cut off after half the cells: no `N row(s)`, exit status 0.
    Cut,
}

/// One fault: which scans (by their STARTROW; `None` for every scan), and whether only the
/// first such scan fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub start_row: Option<Vec<u8>>,
    pub once: bool,
}

impl Fault {
    /// `exit@*`, `cut@row-0100#once`, … (the start row in string-binary form; empty for the
    /// scan that starts at the table's beginning).
    pub fn parse_list(text: &str) -> Result<Vec<Fault>, String> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|spec| {
                let spec = spec.trim();
                let (spec, once) = match spec.strip_suffix("#once") {
                    Some(s) => (s, true),
                    None => (spec, false),
                };
                let (kind, start) = spec
                    .split_once('@')
                    .ok_or_else(|| format!("`{spec}`: expected <kind>@<start row>"))?;
                let kind = match kind {
                    "exit" => FaultKind::Exit,
                    "error" => FaultKind::Error,
                    "cut" => FaultKind::Cut,
                    other => return Err(format!("`{other}`: expected exit, error or cut")),
                };
                let start_row = match start {
                    "*" => None,
                    s => Some(to_bytes_binary(s)?),
                };
                Ok(Fault {
                    kind,
                    start_row,
                    once,
                })
            })
            .collect()
    }

    /// The same fault as `parse_list` reads it.
    pub fn spec(&self) -> String {
        let kind = match self.kind {
            FaultKind::Exit => "exit",
            FaultKind::Error => "error",
            FaultKind::Cut => "cut",
        };
        let start = self
            .start_row
            .as_deref()
            .map_or("*".to_owned(), to_string_binary);
        format!("{kind}@{start}{}", if self.once { "#once" } else { "" })
    }
}

/// One command of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Script {
    Scan {
        table: String,
        time_range: Option<(u64, u64)>,
        start_row: Option<Vec<u8>>,
        stop_row: Option<Vec<u8>>,
    },
    GetSplits {
        table: String,
    },
    Exit,
}

/// Reads one line of the script: `scan 'ns:t', {TIMERANGE => [a, b], STARTROW => "…",
/// STOPROW => "…"}`, `get_splits 'ns:t'` or `exit`.
fn parse_command(line: &str) -> Result<Option<Script>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line == "exit" {
        return Ok(Some(Script::Exit));
    }
    let quoted_table = |rest: &str| -> Result<(String, String), String> {
        let rest = rest.trim_start();
        let inner = rest
            .strip_prefix('\'')
            .ok_or_else(|| format!("expected a quoted table name in `{line}`"))?;
        let end = inner
            .find('\'')
            .ok_or_else(|| format!("unterminated table name in `{line}`"))?;
        Ok((inner[..end].to_owned(), inner[end + 1..].to_owned()))
    };
    if let Some(rest) = line.strip_prefix("get_splits ") {
        let (table, _) = quoted_table(rest)?;
        return Ok(Some(Script::GetSplits { table }));
    }
    if let Some(rest) = line.strip_prefix("scan ") {
        let (table, options) = quoted_table(rest)?;
        let options = options.trim().trim_start_matches(',').trim();
        let mut scan = Script::Scan {
            table,
            time_range: None,
            start_row: None,
            stop_row: None,
        };
        if let Script::Scan {
            time_range,
            start_row,
            stop_row,
            ..
        } = &mut scan
        {
            if let Some(at) = options.find("TIMERANGE => [") {
                let rest = &options[at + "TIMERANGE => [".len()..];
                let end = rest
                    .find(']')
                    .ok_or_else(|| format!("unterminated TIMERANGE in `{line}`"))?;
                let (a, b) = rest[..end]
                    .split_once(',')
                    .ok_or_else(|| format!("TIMERANGE takes two numbers in `{line}`"))?;
                let number = |s: &str| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|e| format!("TIMERANGE `{s}`: {e}"))
                };
                *time_range = Some((number(a)?, number(b)?));
            }
            *start_row = ruby_string_option(options, "STARTROW")?;
            *stop_row = ruby_string_option(options, "STOPROW")?;
        }
        return Ok(Some(scan));
    }
    Err(format!(
        "NameError: undefined local variable or method for `{line}`"
    ))
}

/// `NAME => "…"`, a Ruby double-quoted literal of printable characters and `\xHH` escapes.
fn ruby_string_option(options: &str, name: &str) -> Result<Option<Vec<u8>>, String> {
    let key = format!("{name} => \"");
    let Some(at) = options.find(&key) else {
        return Ok(None);
    };
    let rest = &options[at + key.len()..];
    let end = rest
        .find('"')
        .ok_or_else(|| format!("unterminated {name} string"))?;
    to_bytes_binary(&rest[..end]).map(Some)
}

/// The cells file of `table`, opened; a missing table fails as HBase reports it.
fn open_cells(data: &Path, table: &str) -> Result<std::io::BufReader<std::fs::File>, String> {
    std::fs::File::open(data.join(table).join("cells"))
        .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
        .map_err(|_| format!("org.apache.hadoop.hbase.TableNotFoundException: {table}"))
}

/// The split keys of `table` (none when it is one region).
fn load_splits(data: &Path, table: &str) -> Result<Vec<Vec<u8>>, String> {
    open_cells(data, table)?;
    match std::fs::read_to_string(data.join(table).join("splits")) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(to_bytes_binary)
            .collect(),
        Err(_) => Ok(Vec::new()),
    }
}

/// What a scan selects.
struct Selection<'a> {
    start_row: Option<&'a [u8]>,
    stop_row: Option<&'a [u8]>,
    time_range: Option<(u64, u64)>,
}

/// Streams the stored cells a scan selects, in row order, to `each` as they are stored
/// (row and value already in string-binary form) until `each` says stop. The table is
/// never held in memory, and reading ends at the stop row, so K range scans of a large
/// table cost about what one whole scan does, not K times a load of the table.
fn stream_cells(
    table: &str,
    mut cells: impl BufRead,
    selection: &Selection,
    mut each: impl FnMut(&str, u64, &str) -> Result<bool, String>,
) -> Result<(), String> {
    let mut line = String::new();
    let mut row_bytes: (String, Vec<u8>) = (String::new(), Vec::new());
    loop {
        line.clear();
        if cells.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        let text = line.trim_end_matches('\n');
        let mut parts = text.splitn(3, '\t');
        let (Some(row), Some(ts), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{table}: a stored line is not row\\tts\\tvalue"));
        };
        if row != row_bytes.0 {
            row_bytes = (row.to_owned(), to_bytes_binary(row)?);
        }
        let key = row_bytes.1.as_slice();
        if selection.start_row.is_some_and(|s| key < s) {
            continue;
        }
        if selection.stop_row.is_some_and(|s| key >= s) {
            return Ok(());
        }
        let ts: u64 = ts.parse().map_err(|e| format!("{table}: timestamp: {e}"))?;
        if selection.time_range.is_some_and(|(a, b)| ts < a || b <= ts) {
            continue;
        }
        if !each(row, ts, value)? {
            return Ok(());
        }
    }
}

/// How the stand-in behaves beyond its stored rows.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub faults: Vec<Fault>,
    /// At most this many cells a second per scan ([`RATE_VAR`]).
    pub cells_per_second: Option<u32>,
}

/// Runs the shell over `script`, writing as the real one does; returns the exit status.
pub fn shell(
    script: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
    data: &Path,
    behaviour: &Behaviour,
) -> i32 {
    match run(script, out, err, data, behaviour) {
        Ok(status) => status,
        Err(e) => {
            let _ = writeln!(err, "ERROR: {e}");
            1
        }
    }
}

fn run(
    script: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
    data: &Path,
    behaviour: &Behaviour,
) -> Result<i32, String> {
    let faults = behaviour.faults.as_slice();
    let io = |e: std::io::Error| e.to_string();
    for line in script.lines() {
        let line = line.map_err(io)?;
        let command = match parse_command(&line) {
            Ok(Some(command)) => command,
            Ok(None) => continue,
            Err(e) => {
                writeln!(err, "ERROR: {e}").map_err(io)?;
                return Ok(1);
            }
        };
        match command {
            Script::Exit => return Ok(0),
            Script::GetSplits { table } => {
                let splits = match load_splits(data, &table) {
                    Ok(splits) => splits,
                    Err(e) => {
                        writeln!(err, "ERROR: {e}").map_err(io)?;
                        return Ok(1);
                    }
                };
                writeln!(out, "Total number of splits = {}", splits.len() + 1).map_err(io)?;
                for key in &splits {
                    writeln!(out, "{}", to_string_binary(key)).map_err(io)?;
                }
                writeln!(out, "Took 0.0123 seconds").map_err(io)?;
            }
            Script::Scan {
                table,
                time_range,
                start_row,
                stop_row,
            } => {
                let selection = Selection {
                    start_row: start_row.as_deref(),
                    stop_row: stop_row.as_deref(),
                    time_range,
                };
                let fault = fault_for(faults, data, start_row.as_deref().unwrap_or_default());
                // A fault shows half the selected cells: count them first, in a pass of
                // their own, only then.
                let shown = match fault {
                    Some(FaultKind::Cut | FaultKind::Error) => {
                        let mut selected = 0usize;
                        let counted = open_cells(data, &table).and_then(|cells| {
                            stream_cells(&table, cells, &selection, |_, _, _| {
                                selected += 1;
                                Ok(true)
                            })
                        });
                        if let Err(e) = counted {
                            writeln!(err, "ERROR: {e}").map_err(io)?;
                            return Ok(1);
                        }
                        selected / 2
                    }
                    Some(FaultKind::Exit) => 0,
                    None => usize::MAX,
                };
                let cells = match open_cells(data, &table) {
                    Ok(cells) => cells,
                    Err(e) => {
                        writeln!(err, "ERROR: {e}").map_err(io)?;
                        return Ok(1);
                    }
                };
                writeln!(out, "ROW                                COLUMN+CELL").map_err(io)?;
                let mut rows = 0;
                let mut written = 0usize;
                let mut last = String::new();
                let began = std::time::Instant::now();
                stream_cells(&table, cells, &selection, |row, ts, value| {
                    if written == shown {
                        return Ok(false);
                    }
                    if let Some(rate) = behaviour.cells_per_second.filter(|_| written % 64 == 0) {
                        let due = std::time::Duration::from_secs_f64(
                            written as f64 / f64::from(rate.max(1)),
                        );
                        if let Some(wait) = due.checked_sub(began.elapsed()) {
                            out.flush().map_err(io)?;
                            std::thread::sleep(wait);
                        }
                    }
                    if row != last {
                        rows += 1;
                        last.clear();
                        last.push_str(row);
                    }
                    written += 1;
                    writeln!(
                        out,
                        " {row} column=cf:record, timestamp={ts}, value={value}"
                    )
                    .map_err(io)?;
                    Ok(true)
                })?;
                match fault {
                    Some(FaultKind::Exit) => {
                        writeln!(err, "ERROR: org.apache.hadoop.hbase.client.RetriesExhaustedException: Failed after attempts=8")
                            .map_err(io)?;
                        return Ok(1);
                    }
                    Some(FaultKind::Error) => {
                        writeln!(out, "ERROR: org.apache.hadoop.hbase.NotServingRegionException: region is not online")
                            .map_err(io)?;
                        return Ok(0);
                    }
                    Some(FaultKind::Cut) => return Ok(0),
                    None => {}
                }
                writeln!(out, "{rows} row(s)").map_err(io)?;
                writeln!(out, "Took 0.0456 seconds").map_err(io)?;
            }
        }
    }
    Ok(0)
}

/// The fault for a scan starting at `start`, if any; a `#once` fault is spent by leaving a
/// marker in the data directory.
fn fault_for(faults: &[Fault], data: &Path, start: &[u8]) -> Option<FaultKind> {
    let fault = faults
        .iter()
        .find(|f| f.start_row.as_deref().is_none_or(|s| s == start))?;
    if fault.once {
        let marker = data.join(format!(
            ".fault-{}",
            fault
                .spec()
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_err()
        {
            return None;
        }
    }
    Some(fault.kind.clone())
}

/// The stand-in binary, beside this test binary (`target/<profile>/`), built first if it is
/// not there (a test of one crate does not build the test kit's binaries).
pub fn command() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join(BINARY);
    if !binary.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "intraday-testkit", "--bin", BINARY])
            .status()
            .expect("run cargo to build the hbase stand-in");
        assert!(status.success(), "building {BINARY} failed");
    }
    binary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) {
        let cells: Vec<StoredCell> = (0..10u8)
            .map(|i| StoredCell {
                row: vec![b'r', i, b'\\'],
                timestamp_ms: 100 + u64::from(i),
                value: format!("v{i} \"ü\"").into_bytes(),
            })
            .collect();
        store_table(dir, "core:claimant", &cells, &[vec![b'r', 5]]).expect("store");
    }

    /// A fresh directory under the system's temporary one.
    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(crate::unique("hbase-standin"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        dir
    }

    fn run_script(dir: &Path, script: &str, faults: &[Fault]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let behaviour = Behaviour {
            faults: faults.to_vec(),
            cells_per_second: None,
        };
        let status = shell(script.as_bytes(), &mut out, &mut err, dir, &behaviour);
        (
            status,
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    }

    #[test]
    fn scans_print_as_the_shell_prints_and_honour_ranges() {
        let dir = tempdir();
        sample(&dir);
        let (status, out, _) = run_script(
            &dir,
            "scan 'core:claimant', {TIMERANGE => [102, 108], STARTROW => \"r\\x03\", STOPROW => \"r\\x06\"}\nexit\n",
            &[],
        );
        assert_eq!(status, 0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ROW                                COLUMN+CELL");
        assert_eq!(
            lines[1],
            " r\\x03\\x5C column=cf:record, timestamp=103, value=v3 \"\\xC3\\xBC\""
        );
        assert_eq!(lines.len(), 1 + 3 + 2, "{out}");
        assert_eq!(lines[4], "3 row(s)");
        assert!(lines[5].starts_with("Took "));
    }

    #[test]
    fn get_splits_prints_the_count_of_regions_and_each_key() {
        let dir = tempdir();
        sample(&dir);
        let (status, out, _) = run_script(&dir, "get_splits 'core:claimant'\nexit\n", &[]);
        assert_eq!(status, 0);
        assert_eq!(
            out.lines().take(2).collect::<Vec<_>>(),
            ["Total number of splits = 2", "r\\x05"]
        );
    }

    #[test]
    fn fails_on_demand_and_once_means_once() {
        let dir = tempdir();
        sample(&dir);
        let scan = "scan 'core:claimant', {TIMERANGE => [0, 999]}\nexit\n";
        let exit = Fault::parse_list("exit@*").expect("faults");
        let (status, _, err) = run_script(&dir, scan, &exit);
        assert_eq!(status, 1);
        assert!(err.starts_with("ERROR"), "{err}");

        let cut = Fault::parse_list("cut@#once").expect("faults");
        let (status, out, _) = run_script(&dir, scan, &cut);
        assert_eq!(status, 0);
        assert!(!out.contains("row(s)"), "{out}");
        let (_, again, _) = run_script(&dir, scan, &cut);
        assert!(again.contains("10 row(s)"), "{again}");

        let error = Fault::parse_list("error@r\\x05").expect("faults");
        let (status, out, _) = run_script(
            &dir,
            "scan 'core:claimant', {STARTROW => \"r\\x05\"}\nexit\n",
            &error,
        );
        assert_eq!(status, 0);
        assert!(out.lines().any(|l| l.starts_with("ERROR")), "{out}");
        let (_, untouched, _) = run_script(&dir, scan, &error);
        assert!(untouched.contains("10 row(s)"), "{untouched}");
    }

    #[test]
    fn an_unknown_table_is_an_error_and_exit_status_1() {
        let dir = tempdir();
        let (status, _, err) = run_script(&dir, "scan 'core:nope'\n", &[]);
        assert_eq!(status, 1);
        assert!(err.contains("TableNotFoundException"), "{err}");
    }

    #[test]
    fn string_binary_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(
            to_bytes_binary(&to_string_binary(&bytes)).expect("binary"),
            bytes
        );
        assert!(to_bytes_binary("a\\q").is_err());
    }
}
