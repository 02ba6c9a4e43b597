//! Reading `hbase shell` scan output, one line at a time.
//!
//! The shell prints a header `ROW  COLUMN+CELL`, one line per cell,
//! ` <row> column=<family>:<qualifier>, timestamp=<ms>, value=<value>`, then `N row(s)`
//! (older shells add ` in X seconds`) and `Took X seconds`. With stdout not a terminal the
//! shell's formatter has width 0, so a cell is never wrapped or padded: one space separates
//! the row key from `column=` (hbase-shell `formatter.rb`, `refresh_width`).
//!
//! Row keys and values are in `Bytes.toStringBinary` form: bytes 0x20 to 0x7E as they are,
//! except the backslash, and every other byte as `\xHH`. A value may itself hold `, value=`
//! or ` column=`, so a line is split at the first separators after the row key.

use std::io::{ErrorKind, Read};

use bytes::{Bytes, BytesMut};

use crate::ExtractorError;

/// One cell of the scan: its row key unescaped to its bytes, its value as the shell printed
/// it. The value is unescaped where it is decoded ([`Cell::value`]), on the decoding workers,
/// and until then shares the reader's buffer: the one thread that reads a scan neither copies
/// nor allocates for a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub row: Vec<u8>,
    pub timestamp_ms: u64,
    printed: Bytes,
    /// Line number in the scan output, from 1.
    pub line: u64,
}

impl Cell {
    /// A cell whose value holds `value`'s bytes.
    pub fn new(row: Vec<u8>, timestamp_ms: u64, value: &[u8], line: u64) -> Self {
        Self::printed(row, timestamp_ms, Bytes::from(escape(value)), line)
    }

    /// A cell whose value is `printed`, in `Bytes.toStringBinary` form, as the shell prints it.
    pub fn printed(row: Vec<u8>, timestamp_ms: u64, printed: Bytes, line: u64) -> Self {
        Self {
            row,
            timestamp_ms,
            printed,
            line,
        }
    }

    /// The value as printed, escapes and all.
    pub fn printed_value(&self) -> &[u8] {
        &self.printed
    }

    /// The value's bytes. Without an escape (nearly always: an envelope is ASCII JSON) they
    /// are the printed text itself, and nothing is copied.
    pub fn value(&self) -> Result<Bytes, String> {
        if memchr::memchr(b'\\', &self.printed).is_none() {
            return Ok(self.printed.clone());
        }
        unescape(&self.printed).map(Bytes::from)
    }
}

/// A record the extractor could not use, with what is known about it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The row key in HBase's string-binary form, when the line got that far.
    pub row_key: Option<String>,
    pub timestamp_ms: Option<u64>,
    pub line: Option<u64>,
    pub reason: String,
}

impl Reject {
    pub fn of_cell(cell: &Cell, reason: impl Into<String>) -> Self {
        Self {
            row_key: Some(escape(&cell.row)),
            timestamp_ms: Some(cell.timestamp_ms),
            line: Some(cell.line),
            reason: reason.into(),
        }
    }
}

/// What one line of scan output turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem {
    Cell(Cell),
    Reject(Reject),
}

/// What a complete scan reported about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanSummary {
    /// Distinct row keys read; the shell's `N row(s)` agreed.
    pub rows: u64,
    pub cells: u64,
}

/// Bytes as `Bytes.toStringBinary` prints them.
pub fn escape(bytes: &[u8]) -> String {
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

/// Turns string-binary text back into its bytes, appending them to `out`. A backslash that
/// does not start `\xHH` cannot come from `toStringBinary` (it prints a backslash as `\x5C`),
/// so it is refused rather than guessed at.
pub fn unescape_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    out.reserve(text.len());
    let mut rest = text;
    while let Some(at) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..at]);
        let escaped = match rest.get(at + 1..at + 4) {
            Some([b'x', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        let Some(byte) = escaped else {
            let offset = text.len() - rest.len() + at;
            return Err(format!(
                "invalid escape at byte {offset}: a backslash must start `\\xHH`"
            ));
        };
        out.push(byte);
        rest = &rest[at + 4..];
    }
    out.extend_from_slice(rest);
    Ok(())
}

pub fn unescape(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    unescape_into(text, &mut out)?;
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The parts of a cell line, still escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellLine<'a> {
    pub row: &'a [u8],
    pub column: &'a [u8],
    pub timestamp_ms: u64,
    pub value: &'a [u8],
}

const COLUMN: &[u8] = b" column=";
const TIMESTAMP: &[u8] = b", timestamp=";
const VALUE: &[u8] = b", value=";

/// Splits ` <row> column=<c>, timestamp=<ms>, value=<v>`. A row key may hold ` column=`
/// itself, so each occurrence is tried until the rest of the line has the cell's shape.
pub fn split_cell_line(line: &[u8]) -> Result<CellLine<'_>, String> {
    let rest = line
        .strip_prefix(b" ")
        .ok_or("a cell line starts with a space")?;
    let mut first_problem = None;
    let mut from = 0;
    while let Some(found) = find(&rest[from..], COLUMN) {
        let at = from + found;
        match split_after_row(&rest[at + COLUMN.len()..]) {
            Ok((column, timestamp_ms, value)) if at > 0 => {
                return Ok(CellLine {
                    row: &rest[..at],
                    column,
                    timestamp_ms,
                    value,
                });
            }
            Ok(_) => return Err("the row key is empty".to_owned()),
            Err(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
        from = at + 1;
    }
    Err(first_problem.unwrap_or_else(|| "the line has no `column=` after the row key".to_owned()))
}

fn split_after_row(text: &[u8]) -> Result<(&[u8], u64, &[u8]), String> {
    let ts_at = find(text, TIMESTAMP).ok_or("the line has no `, timestamp=` after `column=`")?;
    let column = &text[..ts_at];
    // Family names are short printable words; a space in the part before `:` means this
    // `column=` was inside the row key.
    match column.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 && !column[..colon].contains(&b' ') => {}
        _ => {
            return Err(format!(
                "the column `{}` is not `family:qualifier`",
                String::from_utf8_lossy(&column[..column.len().min(60)])
            ));
        }
    }
    let after = &text[ts_at + TIMESTAMP.len()..];
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    let ends_well = after.get(digits).is_none_or(|&b| b == b',');
    let timestamp_ms = std::str::from_utf8(&after[..digits])
        .ok()
        .filter(|_| ends_well)
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| {
            let shown: String = String::from_utf8_lossy(&after[..after.len().min(30)]).into();
            format!(
                "the timestamp `{shown}` is not epoch milliseconds (set \
                 hbase.shell.timestamp.format.epoch=true for HBase shells that print dates)"
            )
        })?;
    let value = after[digits..]
        .strip_prefix(VALUE)
        .ok_or("the line has no `, value=` after the timestamp")?;
    Ok((column, timestamp_ms, value))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `N row(s)`, optionally followed by ` in X seconds`.
fn row_count(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || !line[digits..].starts_with(b" row(s)") {
        return None;
    }
    std::str::from_utf8(&line[..digits]).ok()?.parse().ok()
}

fn is_header(line: &[u8]) -> bool {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    words.next() == Some(b"ROW") && words.next() == Some(b"COLUMN+CELL") && words.next().is_none()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BeforeHeader,
    Cells,
    Done,
}

/// Streams a scan's output: one [`ScanItem`] per cell line, and a final check that the scan
/// reported its row count and that the count matches, so a cut-off scan never passes for a
/// short one.
///
/// The output is read into a buffer that whole lines are split off, so each cell's value is a
/// slice of the bytes as they were read: one copy, the kernel's, between the shell and the
/// decoders.
pub struct ScanReader<R> {
    source_name: String,
    reader: R,
    /// Read and not yet handed on: the start of the next line.
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no line break, so a long line is searched once.
    searched: usize,
    ended: bool,
    line_no: u64,
    progress: Progress,
}

/// Bytes asked of the reader at a time: what a pipe gives at most in one read (Linux's
/// default pipe capacity), so the bytes zeroed for a read are nearly all read into.
const READ_SIZE: usize = 64 * 1024;
/// A new buffer's size. The lines split off it keep it alive until they are decoded, so it is
/// a few batches' worth, not more.
const BUFFER_SIZE: usize = 1024 * 1024;

/// What the lines read so far have said.
struct Progress {
    state: State,
    counts: Counts,
    reported_rows: Option<u64>,
}

#[derive(Default)]
struct Counts {
    rows: u64,
    cells: u64,
    last_row: Vec<u8>,
    /// Lines that could not be split, so whose row is unknown: the shell's count may
    /// exceed ours by at most this many.
    unsplit: u64,
    cut_short: bool,
}

impl<R: Read> ScanReader<R> {
    /// `source_name` says where the output comes from, for error messages.
    pub fn new(source_name: impl Into<String>, reader: R) -> Self {
        Self {
            source_name: source_name.into(),
            reader,
            buffer: BytesMut::new(),
            searched: 0,
            ended: false,
            line_no: 0,
            progress: Progress {
                state: State::BeforeHeader,
                counts: Counts::default(),
                reported_rows: None,
            },
        }
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The next cell or reject; `None` once the output has ended and checked out.
    pub fn next_item(&mut self) -> Result<Option<ScanItem>, ExtractorError> {
        loop {
            let line = match memchr::memchr(b'\n', &self.buffer[self.searched..]) {
                Some(at) => {
                    let end = self.searched + at + 1;
                    self.searched = 0;
                    self.buffer.split_to(end).freeze()
                }
                None if !self.ended => {
                    self.searched = self.buffer.len();
                    self.fill()?;
                    continue;
                }
                None if self.buffer.is_empty() => return self.at_end().map(|()| None),
                // The last line, without its line break.
                None => {
                    self.searched = 0;
                    self.buffer.split().freeze()
                }
            };
            self.line_no += 1;
            match self.progress.line(self.line_no, &line) {
                Step::Next => continue,
                Step::Item(item) => return Ok(Some(item)),
                Step::Error(line) => return Err(self.at_line(line)),
            }
        }
    }

    /// Reads once more onto the end of the buffer; `ended` once the output has no more.
    fn fill(&mut self) -> Result<(), ExtractorError> {
        if self.buffer.capacity() - self.buffer.len() < READ_SIZE {
            // While lines split off the buffer are alive, this allocates a new one and moves
            // only the line in progress into it; once they are gone, the old one is reused.
            self.buffer.reserve(BUFFER_SIZE);
        }
        let filled = self.buffer.len();
        // `Read` takes initialised bytes: zeroed just before they are read into, in cache.
        self.buffer.resize(filled + READ_SIZE, 0);
        let read = loop {
            match self.reader.read(&mut self.buffer[filled..]) {
                Ok(read) => break Ok(read),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let read = read.map_err(|e| {
            self.buffer.truncate(filled);
            read_failed(&self.source_name, &e)
        })?;
        self.buffer.truncate(filled + read);
        self.ended = read == 0;
        Ok(())
    }

    fn at_end(&mut self) -> Result<(), ExtractorError> {
        match (self.progress.state, self.progress.reported_rows) {
            (State::BeforeHeader, _) => Err(self.failed(
                "the output has no `ROW  COLUMN+CELL` header: it is not a scan's output".to_owned(),
            )),
            (_, None) => Err(self.failed(format!(
                "the output ends after {} lines without the shell's `N row(s)` line: the scan is truncated",
                self.line_no
            ))),
            (_, Some(reported)) if reported < self.progress.counts.rows || reported > self.progress.counts.rows + self.progress.counts.unsplit => {
                Err(self.failed(format!(
                    "the shell reported {reported} row(s) but {} were read: the output is incomplete",
                    self.progress.counts.rows
                )))
            }
            _ if self.progress.counts.cut_short => Err(self.failed(
                "a cell line is cut short: the output is truncated".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// The scan's totals; meaningful once `next_item` has returned `None`.
    pub fn summary(&self) -> ScanSummary {
        ScanSummary {
            rows: self.progress.counts.rows,
            cells: self.progress.counts.cells,
        }
    }

    fn at_line(&self, reason: String) -> ExtractorError {
        ExtractorError::ScanOutput {
            source_name: self.source_name.clone(),
            line: self.line_no,
            reason,
        }
    }

    fn failed(&self, reason: String) -> ExtractorError {
        scan_failed(&self.source_name, reason)
    }
}

fn scan_failed(source_name: &str, reason: String) -> ExtractorError {
    ExtractorError::ScanFailed {
        source_name: source_name.to_owned(),
        reason,
    }
}

fn read_failed(source_name: &str, e: &std::io::Error) -> ExtractorError {
    scan_failed(source_name, format!("reading the scan output failed: {e}"))
}

/// What one line of output does to the scan.
enum Step {
    /// Nothing to hand on (the banner, the header, the row count, what follows it).
    Next,
    Item(ScanItem),
    /// The shell's `ERROR…` line, to fail the scan with.
    Error(String),
}

impl Progress {
    /// One line of output, with its line break if it has one (the last line may not).
    fn line(&mut self, line_no: u64, line: &Bytes) -> Step {
        let complete = line.last() == Some(&b'\n');
        let mut text: &[u8] = line;
        if complete {
            text = &text[..text.len() - 1];
        }
        if let Some(stripped) = text.strip_suffix(b"\r") {
            text = stripped;
        }
        match self.state {
            State::Done => return Step::Next,
            State::BeforeHeader => {
                if is_header(text) {
                    self.state = State::Cells;
                } else if text.starts_with(b"ERROR") {
                    return Step::Error(String::from_utf8_lossy(text).into_owned());
                }
                return Step::Next;
            }
            State::Cells => {}
        }
        if let Some(count) = row_count(text) {
            self.reported_rows = Some(count);
            self.state = State::Done;
            return Step::Next;
        }
        if text.starts_with(b"ERROR") {
            return Step::Error(String::from_utf8_lossy(text).into_owned());
        }
        if !complete {
            self.counts.cut_short = true;
        }
        Step::Item(cell(&mut self.counts, line_no, line, text, complete))
    }
}

/// The item of a cell line: `text` is `line` without its line break.
fn cell(counts: &mut Counts, line_no: u64, line: &Bytes, text: &[u8], complete: bool) -> ScanItem {
    let reject = |row_key: Option<String>, timestamp_ms, reason: String| {
        ScanItem::Reject(Reject {
            row_key,
            timestamp_ms,
            line: Some(line_no),
            reason,
        })
    };
    let parts = match split_cell_line(text) {
        Ok(parts) => parts,
        Err(reason) => {
            counts.unsplit += 1;
            let reason = if complete {
                reason
            } else {
                format!("the scan output ends in the middle of this line ({reason})")
            };
            return reject(None, None, reason);
        }
    };
    // Only a reject needs the row key as text.
    let row_key = || String::from_utf8_lossy(parts.row).into_owned();
    if parts.row != counts.last_row.as_slice() {
        counts.rows += 1;
        counts.last_row.clear();
        counts.last_row.extend_from_slice(parts.row);
    }
    counts.cells += 1;
    if !complete {
        return reject(
            Some(row_key()),
            Some(parts.timestamp_ms),
            "the scan output ends in the middle of this line: the value is cut short".to_owned(),
        );
    }
    let row = match unescape(parts.row) {
        Ok(row) => row,
        Err(e) => {
            return reject(
                Some(row_key()),
                Some(parts.timestamp_ms),
                format!("row key: {e}"),
            );
        }
    };
    ScanItem::Cell(Cell::printed(
        row,
        parts.timestamp_ms,
        line.slice_ref(parts.value),
        line_no,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every test's scan is read whole in one read, and a few bytes a read, as a pipe may
    /// give it, so lines span reads: one answer.
    fn read_all(text: &str) -> (Vec<ScanItem>, Result<ScanSummary, String>) {
        let whole = read_from(text.as_bytes());
        for at_most in [1, 7, 64] {
            assert_eq!(
                read_from(Trickle(text.as_bytes(), at_most)),
                whole,
                "read {at_most} bytes at a time"
            );
        }
        whole
    }

    /// Gives at most so many bytes a read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn read_from(input: impl Read) -> (Vec<ScanItem>, Result<ScanSummary, String>) {
        let mut reader = ScanReader::new("test scan", input);
        let mut items = Vec::new();
        loop {
            match reader.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return (items, Ok(reader.summary())),
                Err(e) => return (items, Err(e.to_string())),
            }
        }
    }

    fn cells(items: &[ScanItem]) -> Vec<&Cell> {
        items
            .iter()
            .filter_map(|i| match i {
                ScanItem::Cell(c) => Some(c),
                ScanItem::Reject(_) => None,
            })
            .collect()
    }

    fn rejects(items: &[ScanItem]) -> Vec<&Reject> {
        items
            .iter()
            .filter_map(|i| match i {
                ScanItem::Reject(r) => Some(r),
                ScanItem::Cell(_) => None,
            })
            .collect()
    }

    #[test]
    fn unescapes_string_binary_including_utf8_quotes_and_backslashes() {
        // "Zoë" with ë as UTF-8 C3 AB; a JSON escaped quote `\"` arrives as `\x5C"`.
        let text = br#"{"name":"Zo\xC3\xAB","q":"say \x5C"hi\x5C"","path":"C:\x5C\x5Ctmp","lower":"\xc3\xa9"}"#;
        let bytes = unescape(text).expect("valid string-binary");
        let json = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(
            json,
            "{\"name\":\"Zoë\",\"q\":\"say \\\"hi\\\"\",\"path\":\"C:\\\\tmp\",\"lower\":\"é\"}"
        );
        let value: serde_json::Value = serde_json::from_str(&json).expect("the result is JSON");
        assert_eq!(value["name"], "Zoë");
        assert_eq!(value["q"], "say \"hi\"");
        assert_eq!(value["path"], "C:\\tmp");
        assert_eq!(value["lower"], "é");
        assert_eq!(unescape(br"\x00a\x7F\xFF").expect("bytes"), b"\0a\x7f\xff");
    }

    #[test]
    fn refuses_a_backslash_that_is_not_an_escape() {
        for bad in [&br"abc\"[..], br"\x4", br"\xZZ", br"a\nb", br"\X41"] {
            let err = unescape(bad).expect_err("not string-binary");
            assert!(err.contains("a backslash must start"), "{err}");
        }
        assert_eq!(
            unescape(br"ab\x4").unwrap_err(),
            "invalid escape at byte 2: a backslash must start `\\xHH`"
        );
    }

    #[test]
    fn escape_is_to_string_binary() {
        assert_eq!(escape(b"abc 123~"), "abc 123~");
        assert_eq!(escape(b"a\\b"), "a\\x5Cb");
        assert_eq!(escape("ë\n\x7f".as_bytes()), "\\xC3\\xAB\\x0A\\x7F");
    }

    proptest! {
        #[test]
        fn escape_then_unescape_is_identity(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = escape(&bytes);
            prop_assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(unescape(text.as_bytes()).expect("round trip"), bytes);
        }

        #[test]
        fn split_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = split_cell_line(&line);
        }
    }

    #[test]
    fn splits_at_the_first_separators_after_the_row_key() {
        let line = br#" \x00\x01abc column=cf:record, timestamp=1710149402000, value={"a":", timestamp=5, value=x column=y"}"#;
        let parts = split_cell_line(line).expect("a cell");
        assert_eq!(parts.row, br"\x00\x01abc");
        assert_eq!(parts.column, b"cf:record");
        assert_eq!(parts.timestamp_ms, 1_710_149_402_000);
        assert_eq!(parts.value, br#"{"a":", timestamp=5, value=x column=y"}"#);

        // A row key holding ` column=` itself: the occurrence that gives a cell's shape wins.
        let tricky = b" key column=x column=cf:q, timestamp=1, value=v";
        let parts = split_cell_line(tricky).expect("a cell");
        assert_eq!(parts.row, b"key column=x");
        assert_eq!(parts.value, b"v");
    }

    #[test]
    fn explains_lines_that_are_not_cells() {
        let cases: [(&[u8], &str); 6] = [
            (b" row1 cf:a, timestamp=1, value=x", "no `column=`"),
            (b" row1 column=cf:a, value=x", "no `, timestamp=`"),
            (b" row1 column=cf:a, timestamp=1", "no `, value=`"),
            (
                b" row1 column=cf:a, timestamp=2024-03-11T10:30:00.000, value=x",
                "not epoch milliseconds",
            ),
            (
                b"row1 column=cf:a, timestamp=1, value=x",
                "starts with a space",
            ),
            (b"  column=cf:a, timestamp=1, value=x", "row key is empty"),
        ];
        for (line, want) in cases {
            let err = split_cell_line(line).expect_err("not a cell");
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }

    const REAL: &str = concat!(
        "SLF4J: Class path contains multiple SLF4J bindings.\n",
        "HBase Shell\n",
        "Use \"help\" to get list of supported commands.\n",
        "Version 2.4.17, r7fd096f39b4284da9a71da3ce67c48d259ffa79a, Fri Mar 31 18:10:04 UTC 2023\n",
        "scan 'core:claimant', {TIMERANGE => [1710149400001, 1710153000000]}\n",
        "ROW                                COLUMN+CELL\n",
        " \\x8A\\x01{\"id\":\"c1\"} column=cf:record, timestamp=1710149402000, value={\"message\":{\"name\":\"Zo\\xC3\\xAB \\xE2\\x82\\xAC\",\"q\":\"\\x5C\"x\\x5C\"\"}}\n",
        " \\x8A\\x01{\"id\":\"c1\"} column=cf:other, timestamp=1710149402001, value=two\n",
        " \\x8A\\x02{\"id\":\"c2\"} column=cf:record, timestamp=1710152991234, value={}\r\n",
        "2 row(s)\n",
        "Took 0.0345 seconds\n",
        "nil\n",
    );

    #[test]
    fn reads_real_looking_output_with_non_ascii() {
        let (items, summary) = read_all(REAL);
        assert_eq!(summary, Ok(ScanSummary { rows: 2, cells: 3 }));
        let cells = cells(&items);
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0].row, b"\x8A\x01{\"id\":\"c1\"}");
        assert_eq!(cells[0].timestamp_ms, 1_710_149_402_000);
        assert_eq!(cells[0].line, 7);
        let value = cells[0].value().expect("valid escapes");
        assert_eq!(
            std::str::from_utf8(&value),
            Ok(r#"{"message":{"name":"Zoë €","q":"\"x\""}}"#)
        );
        assert_eq!(cells[1].value().as_deref(), Ok(&b"two"[..]));
        assert_eq!(
            cells[2].value().as_deref(),
            Ok(&b"{}"[..]),
            "a CR before the newline is not part of the value"
        );
    }

    #[test]
    fn a_value_is_unescaped_where_it_is_asked_for_and_refused_there_if_broken() {
        let (items, summary) = read_all(
            "ROW  COLUMN+CELL\n r1 column=cf:a, timestamp=5, value=ok\\x5C\n r2 column=cf:a, timestamp=6, value=bad\\q\n2 row(s)\n",
        );
        assert_eq!(summary, Ok(ScanSummary { rows: 2, cells: 2 }));
        let cells = cells(&items);
        assert_eq!(cells[0].printed_value(), br"ok\x5C");
        assert_eq!(cells[0].value().as_deref(), Ok(&br"ok\"[..]));
        assert_eq!(
            cells[1].value(),
            Err("invalid escape at byte 3: a backslash must start `\\xHH`".to_owned())
        );
        let built = Cell::new(b"r".to_vec(), 1, b"a\\b\x00", 1);
        assert_eq!(built.printed_value(), br"a\x5Cb\x00");
        assert_eq!(built.value().as_deref(), Ok(&b"a\\b\x00"[..]));
    }

    #[test]
    fn old_shells_footer_is_accepted() {
        let text =
            "ROW  COLUMN+CELL\n r1 column=cf:a, timestamp=5, value=x\n1 row(s) in 0.0100 seconds\n";
        let (items, summary) = read_all(text);
        assert_eq!(summary, Ok(ScanSummary { rows: 1, cells: 1 }));
        assert_eq!(cells(&items).len(), 1);
    }

    #[test]
    fn an_empty_scan_is_a_success_with_no_cells() {
        let (items, summary) = read_all("ROW  COLUMN+CELL\n0 row(s)\nTook 0.01 seconds\n");
        assert!(items.is_empty());
        assert_eq!(summary, Ok(ScanSummary::default()));
    }

    #[test]
    fn a_line_without_value_is_a_reject_naming_its_row() {
        let text = "ROW  COLUMN+CELL\n r1 column=cf:a, timestamp=5\n r2 column=cf:a, timestamp=6, value=ok\n2 row(s)\n";
        let (items, summary) = read_all(text);
        assert!(summary.is_ok(), "{summary:?}");
        let rejects = rejects(&items);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, Some(2));
        assert!(
            rejects[0].reason.contains("no `, value=`"),
            "{:?}",
            rejects[0]
        );
        assert_eq!(cells(&items).len(), 1);
    }

    #[test]
    fn a_file_cut_mid_line_rejects_the_line_and_fails() {
        let full = "ROW  COLUMN+CELL\n r1 column=cf:a, timestamp=5, value={\"a\":1}\n r2 column=cf:a, timestamp=6, value={\"b\":22222}\n2 row(s)\n";
        let cut = &full[..full.find("22222").expect("marker") + 2];
        let (items, summary) = read_all(cut);
        let rejects = rejects(&items);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].row_key.as_deref(), Some("r2"));
        assert!(rejects[0].reason.contains("cut short"), "{:?}", rejects[0]);
        let err = summary.expect_err("truncated");
        assert!(err.contains("without the shell's `N row(s)` line"), "{err}");
        assert!(err.starts_with("test scan: "), "{err}");
    }

    #[test]
    fn a_file_cut_at_a_line_end_fails() {
        let (_, summary) = read_all("ROW  COLUMN+CELL\n r1 column=cf:a, timestamp=5, value=x\n");
        assert!(summary.expect_err("truncated").contains("truncated"));
    }

    #[test]
    fn a_count_that_disagrees_fails() {
        let (_, summary) =
            read_all("ROW  COLUMN+CELL\n r1 column=cf:a, timestamp=5, value=x\n3 row(s)\n");
        let err = summary.expect_err("rows missing");
        assert!(err.contains("reported 3 row(s) but 1 were read"), "{err}");
    }

    #[test]
    fn output_that_is_not_a_scan_fails() {
        let (_, summary) = read_all("");
        assert!(
            summary
                .expect_err("empty")
                .contains("no `ROW  COLUMN+CELL` header")
        );
        let mut reader = ScanReader::new(
            "scan of core:x",
            "ERROR: Unknown table core:x!\n".as_bytes(),
        );
        let err = reader.next_item().expect_err("shell error").to_string();
        assert_eq!(err, "scan of core:x, line 1: ERROR: Unknown table core:x!");
    }
}
