//! Encoding records into files: Parquet (zstd by default, or another codec) or the original's
//! three text columns as gzip CSV. Files roll over at a size; the encoders only produce
//! bytes, and the caller sends them wherever the output is (a local file, an S3 multipart
//! upload).

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression as GzipLevel;
use flate2::write::GzEncoder;
use intraday_core::OutputFormat;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{ColumnCloseResult, ColumnWriterImpl};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::{
    SerializedFileWriter, SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite,
};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};

use crate::ExtractorError;
use crate::record::Record;

/// Hive and Glue read `id` and `record` as strings and `record_timestamp` as a bigint.
const SCHEMA: &str = "message record {
    REQUIRED BYTE_ARRAY id (UTF8);
    REQUIRED INT64 record_timestamp;
    REQUIRED BYTE_ARRAY record (UTF8);
}";

/// The largest row group, counted in record bytes before compression (about 1.5 MiB once
/// compressed, the column chunks readers fetch). An encoder holds its row group's pages,
/// compressed as each fills, until the group is complete. 8 MiB ran 5-10% faster end to end
/// than 64 MiB when row groups were held raw, and its peak memory stayed flat as scans grew
/// (BENCH.md, "Row groups and the allocator"). zstd compresses pages, not row groups, so
/// files are no larger.
pub const MAX_ROW_GROUP_BYTES: usize = 8 * 1024 * 1024;

/// A Parquet data page's records before compression: each column writer compresses its page
/// once it holds this much (parquet's default, set here because the encoders' sharing rule
/// counts in it, `run::Lanes`).
pub const PAGE_BYTES: usize = 1024 * 1024;

/// What the encoders hand to the output, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// The next bytes of the current file (a new file begins with the first after `EndFile`).
    Bytes(Vec<u8>),
    /// The current file is complete and holds this many records.
    EndFile { records: u64 },
}

/// How Parquet pages are compressed (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at a level from 1 to 22, or one of its fast levels, -1 to -7 (faster still,
    /// compressing less); readers decompress every level alike.
    Zstd(i32),
    Snappy,
    /// Parquet's `LZ4_RAW` (the older `LZ4` codec is deprecated by the format). Readers need
    /// parquet-mr 1.12.3 or newer (Spark 3.3+, Hive with that library).
    Lz4,
    None,
}

impl Codec {
    /// The default, chosen from the benchmark's measurements (BENCH.md, "Compression"): end
    /// to end, zstd level 1 was no faster than level 3 within the noise, for files 1-2%
    /// larger; snappy and lz4 saved 5-10% of the CPU for files 1.5 and 1.9 times as large.
    pub const DEFAULT: Codec = Codec::Zstd(3);

    fn parquet(self) -> Result<Compression, ExtractorError> {
        Ok(match self {
            Codec::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).map_err(parquet_error)?)
            }
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::None => Compression::UNCOMPRESSED,
        })
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    /// `zstd[:LEVEL]`, `snappy`, `lz4` or `none`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = "use zstd[:LEVEL] (LEVEL 1 to 22, or -1 to -7 for zstd's fast levels), snappy, lz4 or none";
        match text.split_once(':') {
            Some(("zstd", level)) => match level.parse::<i32>() {
                Ok(level @ (-7..=-1 | 1..=22)) => Ok(Codec::Zstd(level)),
                _ => Err(format!(
                    "the zstd level `{level}` is not 1 to 22 or -1 to -7; {usage}"
                )),
            },
            Some(_) => Err(format!("unknown compression `{text}`; {usage}")),
            None => match text {
                "zstd" => Ok(Codec::Zstd(3)),
                "snappy" => Ok(Codec::Snappy),
                "lz4" => Ok(Codec::Lz4),
                "none" => Ok(Codec::None),
                _ => Err(format!("unknown compression `{text}`; {usage}")),
            },
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Zstd(level) => write!(f, "zstd:{level}"),
            Codec::Snappy => f.write_str("snappy"),
            Codec::Lz4 => f.write_str("lz4"),
            Codec::None => f.write_str("none"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub format: OutputFormat,
    /// Parquet's page compression; CSV is always gzip.
    pub codec: Codec,
    /// A file is closed once it reaches about this size.
    pub file_size: u64,
    pub row_group_bytes: usize,
}

impl WriterSettings {
    pub fn new(format: OutputFormat, file_size: u64) -> Self {
        let row_group_bytes = usize::try_from(file_size)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_ROW_GROUP_BYTES);
        Self {
            format,
            codec: Codec::DEFAULT,
            file_size,
            row_group_bytes,
        }
    }

    /// The file name ending for the format.
    pub fn extension(&self) -> &'static str {
        match self.format {
            OutputFormat::Parquet => "parquet",
            OutputFormat::CsvGzip => "csv.gz",
        }
    }
}

/// Feeds records into one file after another.
pub struct Roller {
    settings: WriterSettings,
    current: Option<Encoder>,
    chunks: Vec<Chunk>,
}

impl Roller {
    pub fn new(settings: WriterSettings) -> Self {
        Self {
            settings,
            current: None,
            chunks: Vec::new(),
        }
    }

    pub fn push(&mut self, record: Record) -> Result<(), ExtractorError> {
        let encoder = match &mut self.current {
            Some(encoder) => encoder,
            None => self.current.insert(Encoder::new(&self.settings)?),
        };
        encoder.push(record)?;
        if encoder.is_full() {
            self.close_file()?;
        }
        Ok(())
    }

    /// The bytes and file ends produced so far. Bytes still inside the encoder (a row group
    /// in progress, compressor state) come out later.
    pub fn drain(&mut self) -> Vec<Chunk> {
        if let Some(encoder) = &mut self.current {
            let pieces = encoder.take_bytes();
            self.chunks.extend(pieces.into_iter().map(Chunk::Bytes));
        }
        std::mem::take(&mut self.chunks)
    }

    /// Closes the file in progress, if any, and returns everything not yet drained.
    pub fn finish(mut self) -> Result<Vec<Chunk>, ExtractorError> {
        self.close_file()?;
        Ok(self.chunks)
    }

    fn close_file(&mut self) -> Result<(), ExtractorError> {
        if let Some(encoder) = self.current.take() {
            let records = encoder.records();
            let pieces = encoder.finish()?;
            self.chunks.extend(pieces.into_iter().map(Chunk::Bytes));
            self.chunks.push(Chunk::EndFile { records });
        }
        Ok(())
    }
}

enum Encoder {
    Parquet(Box<ParquetEncoder>),
    Csv(CsvEncoder),
}

impl Encoder {
    fn new(settings: &WriterSettings) -> Result<Self, ExtractorError> {
        Ok(match settings.format {
            OutputFormat::Parquet => Encoder::Parquet(Box::new(ParquetEncoder::new(settings)?)),
            OutputFormat::CsvGzip => Encoder::Csv(CsvEncoder::new(settings)),
        })
    }

    fn push(&mut self, record: Record) -> Result<(), ExtractorError> {
        match self {
            Encoder::Parquet(p) => p.push(record),
            Encoder::Csv(c) => c.push(&record),
        }
    }

    fn is_full(&self) -> bool {
        match self {
            Encoder::Parquet(p) => p.is_full(),
            Encoder::Csv(c) => c.is_full(),
        }
    }

    fn records(&self) -> u64 {
        match self {
            Encoder::Parquet(p) => p.records,
            Encoder::Csv(c) => c.records,
        }
    }

    /// The bytes encoded so far, in order, none of them empty.
    fn take_bytes(&mut self) -> Vec<Vec<u8>> {
        match self {
            Encoder::Parquet(p) => p.writer.inner_mut().take(),
            Encoder::Csv(c) => non_empty(c.take_bytes()),
        }
    }

    /// The rest of the file's bytes, in order, none of them empty.
    fn finish(self) -> Result<Vec<Vec<u8>>, ExtractorError> {
        match self {
            Encoder::Parquet(p) => p.finish(),
            Encoder::Csv(c) => c.finish().map(non_empty),
        }
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> ExtractorError {
    ExtractorError::encode("a Parquet file", e)
}

pub fn parquet_properties(codec: Codec) -> Result<WriterProperties, ExtractorError> {
    Ok(WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(codec.parquet()?)
        // Ids and documents are nearly all distinct: a dictionary would be built, then
        // abandoned, for every page.
        .set_dictionary_enabled(false)
        .set_data_page_size_limit(PAGE_BYTES)
        .set_column_statistics_enabled(ColumnPath::from("record"), EnabledStatistics::None)
        .set_statistics_truncate_length(Some(64))
        .set_created_by(format!("intraday-extractor {}", env!("CARGO_PKG_VERSION")))
        .build())
}

fn non_empty(bytes: Vec<u8>) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        Vec::new()
    } else {
        vec![bytes]
    }
}

/// A file's encoded bytes, kept in pieces of about [`PIECE_BYTES`] rather than one vector.
/// A growing vector is copied whole each time it doubles, into memory never touched before:
/// the pieces measured 4-5% faster end to end on one core (BENCH.md, "Row groups and the
/// allocator").
#[derive(Default)]
struct Pieces {
    full: Vec<Vec<u8>>,
    current: Vec<u8>,
}

/// Most Parquet pages compress to well under this, so a piece holds several.
const PIECE_BYTES: usize = 1024 * 1024;

impl Pieces {
    fn take(&mut self) -> Vec<Vec<u8>> {
        let mut pieces = std::mem::take(&mut self.full);
        if !self.current.is_empty() {
            pieces.push(std::mem::take(&mut self.current));
        }
        pieces
    }
}

impl Write for Pieces {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.current.capacity() - self.current.len() < bytes.len() {
            let full = std::mem::replace(
                &mut self.current,
                Vec::with_capacity(bytes.len().max(PIECE_BYTES)),
            );
            if !full.is_empty() {
                self.full.push(full);
            }
        }
        self.current.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One Parquet file being encoded. Records go into the row group's column writers as they
/// arrive, so each page is compressed as soon as it is full and a row group holds only its
/// compressed pages until it closes. Held raw and compressed when full, a row group's records
/// took 8 MiB per encoder, and a collection's last row groups were compressed after its last
/// record, one core idle while the larger ran (BENCH.md, "Pages compressed as they fill").
struct ParquetEncoder {
    writer: SerializedFileWriter<Pieces>,
    /// The row group in progress, from its first record to its close.
    group: Option<GroupInProgress>,
    /// Each column's pages, in the schema's order.
    pages: [ColumnPages; 3],
    /// Records not yet handed to the column writers: they take a slice of values at a time.
    ids: Vec<ByteArray>,
    timestamps: Vec<i64>,
    documents: Vec<ByteArray>,
    staged_bytes: usize,
    /// Record bytes in the row group in progress, staged ones included.
    group_bytes: usize,
    records: u64,
    last_group_size: u64,
    file_size: u64,
    row_group_bytes: usize,
}

/// Records are handed to the column writers once this many bytes of them are staged: the
/// writers then check their pages' size once per slice rather than once per record.
const STAGED_BYTES: usize = 256 * 1024;

/// A row group's three column writers, each encoding into its column's pages.
struct GroupInProgress {
    ids: ColumnWriterImpl<'static, ByteArrayType>,
    timestamps: ColumnWriterImpl<'static, Int64Type>,
    documents: ColumnWriterImpl<'static, ByteArrayType>,
}

impl GroupInProgress {
    fn new(
        schema: &SchemaDescriptor,
        properties: &Arc<WriterProperties>,
        pages: &[ColumnPages; 3],
    ) -> Self {
        Self {
            ids: ColumnWriterImpl::new(schema.column(0), properties.clone(), pages[0].writer()),
            timestamps: ColumnWriterImpl::new(
                schema.column(1),
                properties.clone(),
                pages[1].writer(),
            ),
            documents: ColumnWriterImpl::new(
                schema.column(2),
                properties.clone(),
                pages[2].writer(),
            ),
        }
    }
}

/// One column's pages for the row group in progress: memory shared with the encoder, which
/// copies the column chunk into the file once the column's writer has closed (a writer
/// keeps its page writer until then), and keeps the memory for the next row group.
#[derive(Default, Clone)]
struct ColumnPages(Arc<std::sync::Mutex<Vec<u8>>>);

fn pages_lost<T>(_: std::sync::PoisonError<T>) -> std::io::Error {
    std::io::Error::other("a column's pages were lost")
}

impl ColumnPages {
    fn writer(&self) -> Box<dyn PageWriter> {
        Box::new(PageSink {
            sink: TrackedWrite::new(self.clone()),
        })
    }

    /// Moves the column chunk into the row group, which rebases its page offsets.
    fn append_to(
        &self,
        row_group: &mut SerializedRowGroupWriter<'_, Pieces>,
        closed: ColumnCloseResult,
    ) -> Result<(), ExtractorError> {
        let mut pages = self
            .0
            .lock()
            .map_err(|e| ExtractorError::encode("a Parquet file", pages_lost(e)))?;
        row_group
            .append_column(&ChunkSlice(&pages), closed)
            .map_err(parquet_error)?;
        pages.clear();
        Ok(())
    }
}

impl Write for ColumnPages {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(pages_lost)?.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A column chunk in memory, read as `append_column` reads one.
struct ChunkSlice<'a>(&'a [u8]);

impl Length for ChunkSlice<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

impl<'a> ChunkReader for ChunkSlice<'a> {
    type T = &'a [u8];

    fn get_read(&self, start: u64) -> parquet::errors::Result<&'a [u8]> {
        let slice: &'a [u8] = self.0;
        usize::try_from(start)
            .ok()
            .and_then(|start| slice.get(start..))
            .ok_or_else(|| ParquetError::EOF(format!("no byte {start} in a column chunk")))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let read = self.get_read(start)?;
        read.get(..length)
            .map(Bytes::copy_from_slice)
            .ok_or_else(|| {
                ParquetError::EOF(format!("no {length} bytes at {start} in a column chunk"))
            })
    }
}

/// Writes each page as the file writer would (its header, then its bytes), into a column's
/// own memory: the offsets it reports count from the chunk's start, and the row group
/// moves them when it takes the chunk (`SerializedRowGroupWriter::append_column`).
struct PageSink {
    sink: TrackedWrite<ColumnPages>,
}

impl PageWriter for PageSink {
    fn write_page(&mut self, page: CompressedPage) -> parquet::errors::Result<PageWriteSpec> {
        SerializedPageWriter::new(&mut self.sink).write_page(page)
    }

    fn close(&mut self) -> parquet::errors::Result<()> {
        self.sink.flush()?;
        Ok(())
    }
}

impl ParquetEncoder {
    fn new(settings: &WriterSettings) -> Result<Self, ExtractorError> {
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(parquet_error)?);
        let writer = SerializedFileWriter::new(
            Pieces::default(),
            schema,
            Arc::new(parquet_properties(settings.codec)?),
        )
        .map_err(parquet_error)?;
        Ok(Self {
            writer,
            group: None,
            pages: Default::default(),
            ids: Vec::new(),
            timestamps: Vec::new(),
            documents: Vec::new(),
            staged_bytes: 0,
            group_bytes: 0,
            records: 0,
            last_group_size: 0,
            file_size: settings.file_size,
            row_group_bytes: settings.row_group_bytes,
        })
    }

    fn push(&mut self, record: Record) -> Result<(), ExtractorError> {
        // Cell timestamps are far below i64::MAX; one that is not is kept at the maximum
        // rather than wrapped negative.
        let timestamp = i64::try_from(record.timestamp_ms).unwrap_or(i64::MAX);
        let bytes = record.id.len() + record.record.len() + 8;
        self.staged_bytes += bytes;
        self.group_bytes += bytes;
        self.ids.push(ByteArray::from(record.id.into_bytes()));
        self.timestamps.push(timestamp);
        self.documents.push(ByteArray::from(record.record));
        self.records += 1;
        if self.group_bytes >= self.row_group_bytes {
            self.close_group()?;
        } else if self.staged_bytes >= STAGED_BYTES {
            self.write_staged()?;
        }
        Ok(())
    }

    /// Hands the staged records to the row group's column writers, which compress each page
    /// as it fills.
    fn write_staged(&mut self) -> Result<(), ExtractorError> {
        if self.timestamps.is_empty() {
            return Ok(());
        }
        let group = match &mut self.group {
            Some(group) => group,
            None => self.group.insert(GroupInProgress::new(
                self.writer.schema_descr(),
                self.writer.properties(),
                &self.pages,
            )),
        };
        group
            .ids
            .write_batch(&self.ids, None, None)
            .map_err(parquet_error)?;
        group
            .timestamps
            .write_batch(&self.timestamps, None, None)
            .map_err(parquet_error)?;
        group
            .documents
            .write_batch(&self.documents, None, None)
            .map_err(parquet_error)?;
        self.ids.clear();
        self.timestamps.clear();
        self.documents.clear();
        self.staged_bytes = 0;
        Ok(())
    }

    /// Writes the row group in progress, if any, into the file.
    fn close_group(&mut self) -> Result<(), ExtractorError> {
        self.write_staged()?;
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let closed = [
            group.ids.close().map_err(parquet_error)?,
            group.timestamps.close().map_err(parquet_error)?,
            group.documents.close().map_err(parquet_error)?,
        ];
        let mut row_group = self.writer.next_row_group().map_err(parquet_error)?;
        for (closed, pages) in closed.into_iter().zip(&self.pages) {
            pages.append_to(&mut row_group, closed)?;
        }
        let metadata = row_group.close().map_err(parquet_error)?;
        self.last_group_size = u64::try_from(metadata.compressed_size()).unwrap_or(0);
        self.group_bytes = 0;
        Ok(())
    }

    /// Full when another row group like the last would take the file past its size, so
    /// files stay at or under the size rather than over it by a row group.
    fn is_full(&self) -> bool {
        self.last_group_size > 0
            && self.group_bytes == 0
            && self.writer.bytes_written() as u64 + self.last_group_size > self.file_size
    }

    fn finish(mut self) -> Result<Vec<Vec<u8>>, ExtractorError> {
        self.close_group()?;
        self.writer.finish().map_err(parquet_error)?;
        Ok(self.writer.inner_mut().take())
    }
}

/// The original's columns as RFC 4180 CSV: every field quoted, quotes doubled. No row ever
/// holds a raw line break, so Hive's line-based readers see one record per line: the id and
/// the timestamp cannot hold one, and in valid JSON a raw CR or LF can only be whitespace
/// between tokens, which becomes a space without changing the document.
struct CsvEncoder {
    gzip: GzEncoder<Vec<u8>>,
    line: Vec<u8>,
    drained: u64,
    records: u64,
    file_size: u64,
}

impl CsvEncoder {
    fn new(settings: &WriterSettings) -> Self {
        // Level 1: the format exists for compatibility with the original, which used LZO.
        // The default level 6 measured eight times slower (BENCH.md) for files a third smaller.
        Self {
            gzip: GzEncoder::new(Vec::new(), GzipLevel::fast()),
            line: Vec::new(),
            drained: 0,
            records: 0,
            file_size: settings.file_size,
        }
    }

    fn push(&mut self, record: &Record) -> Result<(), ExtractorError> {
        self.line.clear();
        quote_into(&mut self.line, record.id.as_bytes());
        self.line.push(b',');
        quote_into(&mut self.line, record.timestamp_ms.to_string().as_bytes());
        self.line.push(b',');
        quote_into(&mut self.line, &record.record);
        self.line.push(b'\n');
        self.gzip
            .write_all(&self.line)
            .map_err(|e| ExtractorError::encode("a CSV file", e))?;
        self.records += 1;
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.drained + self.gzip.get_ref().len() as u64 >= self.file_size
    }

    fn take_bytes(&mut self) -> Vec<u8> {
        let bytes = std::mem::take(self.gzip.get_mut());
        self.drained += bytes.len() as u64;
        bytes
    }

    fn finish(self) -> Result<Vec<u8>, ExtractorError> {
        self.gzip
            .finish()
            .map_err(|e| ExtractorError::encode("a CSV file", e))
    }
}

fn quote_into(out: &mut Vec<u8>, field: &[u8]) {
    out.push(b'"');
    for &b in field {
        match b {
            b'"' => out.extend_from_slice(b"\"\""),
            b'\n' | b'\r' => out.push(b' '),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    fn record(i: u64, doc: &str) -> Record {
        Record {
            id: format!(r#"{{"id":"r{i}"}}"#),
            timestamp_ms: 1_710_149_400_000 + i,
            record: doc.as_bytes().to_vec(),
        }
    }

    /// Hex text: it compresses only about twofold, so file sizes grow with the records
    /// (repeated text would compress to almost nothing and never roll over).
    fn noise(seed: u64, len: usize) -> String {
        let mut rng = crate::synth::Rng::new(seed);
        let mut out = String::with_capacity(len);
        while out.len() < len {
            out.push_str(&format!("{:016x}", rng.next_u64()));
        }
        out.truncate(len);
        out
    }

    /// Splits chunks into files.
    fn files(chunks: Vec<Chunk>) -> Vec<(Vec<u8>, u64)> {
        let mut files = Vec::new();
        let mut current = Vec::new();
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(b) => current.extend(b),
                Chunk::EndFile { records } => files.push((std::mem::take(&mut current), records)),
            }
        }
        assert!(current.is_empty(), "bytes after the last file end");
        files
    }

    fn read_parquet(bytes: Vec<u8>) -> Vec<Record> {
        let reader =
            SerializedFileReader::new(hyper::body::Bytes::from(bytes)).expect("a Parquet file");
        reader
            .get_row_iter(None)
            .expect("rows")
            .map(|row| {
                let row = row.expect("row");
                Record {
                    id: row.get_string(0).expect("id").clone(),
                    timestamp_ms: u64::try_from(row.get_long(1).expect("ts")).expect("positive"),
                    record: row.get_string(2).expect("record").as_bytes().to_vec(),
                }
            })
            .collect()
    }

    fn all_chunks(settings: WriterSettings, records: &[Record]) -> Vec<Chunk> {
        let mut roller = Roller::new(settings);
        let mut chunks = Vec::new();
        for (i, r) in records.iter().enumerate() {
            roller.push(r.clone()).expect("push");
            if i % 7 == 0 {
                chunks.extend(roller.drain());
            }
        }
        chunks.extend(roller.drain());
        chunks.extend(roller.finish().expect("finish"));
        chunks
    }

    #[test]
    fn parquet_reads_back_equal_to_the_input() {
        let records: Vec<Record> = (0..100)
            .map(|i| record(i, &format!(r#"{{"n":{i},"text":"Zoë \"q\"\nline"}}"#)))
            .collect();
        let files = files(all_chunks(
            WriterSettings::new(OutputFormat::Parquet, 128 << 20),
            &records,
        ));
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].1, 100);
        assert_eq!(read_parquet(files[0].0.clone()), records);
    }

    #[test]
    fn parquet_rolls_over_near_the_size_and_loses_nothing() {
        let records: Vec<Record> = (0..600)
            .map(|i| record(i, &format!(r#"{{"n":{i},"pad":"{}"}}"#, noise(i, 900))))
            .collect();
        let mut settings = WriterSettings::new(OutputFormat::Parquet, 16 * 1024);
        settings.row_group_bytes = 8 * 1024;
        let files = files(all_chunks(settings, &records));
        assert!(files.len() > 2, "{} files", files.len());
        let mut back = Vec::new();
        for (bytes, count) in files {
            assert!(bytes.len() <= 20 * 1024, "a file of {} bytes", bytes.len());
            let rows = read_parquet(bytes);
            assert_eq!(rows.len() as u64, count);
            back.extend(rows);
        }
        assert_eq!(back, records);
    }

    #[test]
    fn pages_are_compressed_as_records_arrive_not_when_their_row_group_closes() {
        // About 3 MB of records: several pages, less than a row group.
        let records: Vec<Record> = (0..3000)
            .map(|i| record(i, &format!(r#"{{"n":{i},"pad":"{}"}}"#, noise(i, 1000))))
            .collect();
        let settings = WriterSettings::new(OutputFormat::Parquet, 128 << 20);
        let mut encoder = ParquetEncoder::new(&settings).expect("encoder");
        for r in &records {
            encoder.push(r.clone()).expect("push");
        }
        assert!(encoder.writer.flushed_row_groups().is_empty());
        let paged = encoder.pages[2].0.lock().expect("pages").len();
        // Two pages of about 1 MiB of hex each, compressed to about two thirds.
        assert!(paged > 1 << 20, "only {paged} bytes of record pages so far");
        assert!(encoder.staged_bytes < STAGED_BYTES);
        let bytes = encoder.finish().expect("finish").concat();
        assert_eq!(read_parquet(bytes), records);
    }

    #[test]
    fn several_row_groups_read_back_whole_with_their_statistics() {
        // About 3 MB of records in row groups of 1 MB.
        let records: Vec<Record> = (0..3000)
            .map(|i| record(i, &format!(r#"{{"n":{i},"pad":"{}"}}"#, noise(i, 1000))))
            .collect();
        let mut settings = WriterSettings::new(OutputFormat::Parquet, 128 << 20);
        settings.row_group_bytes = 1 << 20;
        let files = files(all_chunks(settings, &records));
        assert_eq!(files.len(), 1);
        let bytes = files[0].0.clone();
        let reader = SerializedFileReader::new(hyper::body::Bytes::from(bytes.clone()))
            .expect("a Parquet file");
        let groups = reader.metadata().row_groups();
        assert!(groups.len() >= 3, "{} row groups", groups.len());
        let mut first = 0;
        for group in groups {
            let rows = usize::try_from(group.num_rows()).expect("rows");
            let ids = &records[first..first + rows];
            let stats = group.column(0).statistics().expect("id statistics");
            let min = ids.iter().map(|r| r.id.as_bytes()).min().expect("ids");
            let max = ids.iter().map(|r| r.id.as_bytes()).max().expect("ids");
            assert_eq!(stats.min_bytes_opt(), Some(min));
            assert_eq!(stats.max_bytes_opt(), Some(max));
            assert!(
                group.column(2).statistics().is_none(),
                "no record statistics"
            );
            first += rows;
        }
        assert_eq!(first, records.len());
        assert_eq!(read_parquet(bytes), records);
    }

    #[test]
    fn csv_gzip_quotes_and_keeps_one_record_per_line() {
        let records = vec![
            record(1, "{\"a\":\"say \\\"hi\\\"\",\n  \"b\": [1,\r\n2]}"),
            record(2, r#"{"plain":true}"#),
        ];
        let files = files(all_chunks(
            WriterSettings::new(OutputFormat::CsvGzip, 128 << 20),
            &records,
        ));
        assert_eq!(files.len(), 1);
        let mut text = String::new();
        flate2::read::GzDecoder::new(files[0].0.as_slice())
            .read_to_string(&mut text)
            .expect("gzip");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#""{""id"":""r1""}","1710149400001","{""a"":""say \""hi\"""",   ""b"": [1,  2]}""#,
                r#""{""id"":""r2""}","1710149400002","{""plain"":true}""#,
            ]
        );
        let unquoted = lines[0].rsplit_once(",\"").expect("3 fields").1;
        let json = unquoted.trim_end_matches('"').replace("\"\"", "\"");
        let value: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(value["a"], "say \"hi\"");
    }

    #[test]
    fn csv_gzip_rolls_over() {
        // gzip holds up to 32 KiB of output before it shows, so the files are larger than
        // the size by about that much; at the real sizes (MiB) it does not matter.
        let records: Vec<Record> = (0..2000)
            .map(|i| record(i, &format!(r#"{{"n":{i},"v":"{}"}}"#, noise(i, 100))))
            .collect();
        let files = files(all_chunks(
            WriterSettings::new(OutputFormat::CsvGzip, 16 * 1024),
            &records,
        ));
        assert!(files.len() > 1);
        let mut lines = 0;
        for (bytes, count) in &files {
            let mut text = String::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_string(&mut text)
                .expect("each file is a whole gzip stream");
            assert_eq!(text.lines().count() as u64, *count);
            lines += count;
        }
        assert_eq!(lines, 2000);
    }

    #[test]
    fn every_codec_reads_back_and_is_named_in_the_file() {
        let records: Vec<Record> = (0..50)
            .map(|i| record(i, &format!(r#"{{"n":{i},"pad":"{}"}}"#, noise(i, 300))))
            .collect();
        for (text, codec, in_file) in [
            ("zstd:1", Codec::Zstd(1), "ZSTD"),
            ("zstd", Codec::Zstd(3), "ZSTD"),
            ("zstd:22", Codec::Zstd(22), "ZSTD"),
            ("zstd:-1", Codec::Zstd(-1), "ZSTD"),
            ("zstd:-7", Codec::Zstd(-7), "ZSTD"),
            ("snappy", Codec::Snappy, "SNAPPY"),
            ("lz4", Codec::Lz4, "LZ4_RAW"),
            ("none", Codec::None, "UNCOMPRESSED"),
        ] {
            assert_eq!(text.parse::<Codec>(), Ok(codec), "{text}");
            assert_eq!(codec.to_string().parse::<Codec>(), Ok(codec), "{codec}");
            let mut settings = WriterSettings::new(OutputFormat::Parquet, 128 << 20);
            settings.codec = codec;
            let files = files(all_chunks(settings, &records));
            assert_eq!(files.len(), 1, "{text}");
            let bytes = files[0].0.clone();
            let reader = SerializedFileReader::new(hyper::body::Bytes::from(bytes.clone()))
                .expect("a Parquet file");
            let written = reader.metadata().row_group(0).column(2).compression();
            assert!(
                written.to_string().starts_with(in_file),
                "{text}: {written}"
            );
            assert_eq!(read_parquet(bytes), records, "{text}");
        }
        for bad in [
            "zstd:0", "zstd:-8", "zstd:23", "zstd:x", "gzip", "lz4:1", "",
        ] {
            assert!(bad.parse::<Codec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pieces_keep_every_byte_in_order_and_no_piece_is_empty() {
        let mut pieces = Pieces::default();
        let writes: Vec<Vec<u8>> = [0, 10, PIECE_BYTES - 20, 30, 3 * PIECE_BYTES, 1, 0, 7]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8; len])
            .collect();
        let mut taken = Vec::new();
        for (i, bytes) in writes.iter().enumerate() {
            pieces.write_all(bytes).expect("in memory");
            if i == 3 {
                taken.extend(pieces.take());
            }
        }
        taken.extend(pieces.take());
        assert!(taken.iter().all(|piece| !piece.is_empty()));
        // The large write is a piece of its own, not copied into a smaller one.
        assert!(taken.iter().any(|piece| piece.len() == 3 * PIECE_BYTES));
        assert_eq!(taken.concat(), writes.concat());
        assert!(pieces.take().is_empty());
    }

    #[test]
    fn no_records_no_files() {
        let roller = Roller::new(WriterSettings::new(OutputFormat::Parquet, 1 << 20));
        assert_eq!(roller.finish().expect("finish"), []);
    }
}
