//! The extractor: the EMR step that scans each collection's window through `hbase shell`,
//! decrypts every record and writes Parquet (or CSV-gzip) files and a manifest.
//!
//! | module | role |
//! |---|---|
//! | [`scan`] | parsing `hbase shell` scan output and HBase's string-binary escapes |
//! | [`source`] | the scan's source: `hbase shell` as a child process, or a saved file |
//! | [`json`] | a JSON validator and the envelope's field reader, built for speed |
//! | [`record`] | the JSON envelope, decryption and the checks on each record |
//! | [`crypto`] | AES-128-CTR and plaintext data keys that wipe themselves |
//! | [`keys`] | where data keys come from, and the cache that asks once per key |
//! | [`dks`] | the data key service client: mutual TLS, retries with backoff |
//! | [`kms`] | data keys wrapped with AWS KMS |
//! | [`writer`] | Parquet and CSV-gzip encoders that roll over at a size |
//! | [`output`] | a local directory or S3 (multipart, tagged) |
//! | [`manifest`] | the output layout, the manifest and the rejects file |
//! | [`run`] | the run: the per-collection pipeline, then the manifest |
//! | [`tasks`] | a run spread over Spark: its tasks (key ranges), one task, the commit |
//! | [`cli`] | flags to a run |
//! | [`loopback_dks`] | a data key service on loopback for tests, benchmarks and local runs |
//! | [`synth`] | realistic scan output with encrypted records, for tests and benchmarks |

pub mod cli;
pub mod crypto;
pub mod dks;
mod error;
pub mod json;
pub mod keys;
pub mod kms;
pub mod loopback_dks;
pub mod manifest;
pub mod output;
pub mod record;
pub mod run;
pub mod scan;
pub mod source;
pub mod synth;
pub mod tasks;
pub mod writer;

pub use error::ExtractorError;
