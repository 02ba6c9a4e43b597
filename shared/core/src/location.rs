//! S3 locations, catalog database names and output formats: the values that become paths,
//! identifiers and arguments, validated once where they enter.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// An `s3://bucket/key` location. The key may be empty (the bucket's root) and, for a
/// prefix, ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct S3Uri {
    bucket: String,
    key: String,
}

impl S3Uri {
    pub fn parse(uri: &str) -> Result<Self, CoreError> {
        let invalid = |reason: &str| CoreError::InvalidS3Uri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it must start with `s3://`"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        Self::new(bucket, key).map_err(|e| match e {
            CoreError::InvalidS3Uri { reason, .. } => invalid(&reason),
            other => other,
        })
    }

    pub fn new(bucket: &str, key: &str) -> Result<Self, CoreError> {
        let invalid = |reason: String| CoreError::InvalidS3Uri {
            uri: format!("s3://{bucket}/{key}"),
            reason,
        };
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(invalid(format!(
                "`{bucket}` is not a bucket name (3 to 63 lower-case letters, digits, `-` and `.`)"
            )));
        }
        if key.len() > 1024 {
            return Err(invalid("the key is longer than 1024 bytes".to_owned()));
        }
        if key.chars().any(char::is_control) {
            return Err(invalid("the key holds a control character".to_owned()));
        }
        if key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(invalid("the key holds a `.` or `..` segment".to_owned()));
        }
        if key.starts_with('/') || key.contains("//") {
            return Err(invalid("the key holds an empty segment".to_owned()));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same location as a prefix: its key ends with `/` unless it is the bucket root.
    pub fn as_prefix(&self) -> Self {
        let mut key = self.key.clone();
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        Self {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// A location below this one. `child` is one or more path segments without `.`/`..`.
    pub fn join(&self, child: &str) -> Result<Self, CoreError> {
        let prefix = self.as_prefix();
        Self::new(&self.bucket, &format!("{}{child}", prefix.key))
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl FromStr for S3Uri {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for S3Uri {
    type Error = CoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<S3Uri> for String {
    fn from(value: S3Uri) -> Self {
        value.to_string()
    }
}

impl JsonSchema for S3Uri {
    fn schema_name() -> Cow<'static, str> {
        "S3Uri".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An S3 location, `s3://<bucket>/<key>`.",
            "type": "string",
            "pattern": "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
        })
    }
}

/// A Glue/Hive database name: lower-case letters, digits and `_`, as Glue folds names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatabaseName(String);

impl DatabaseName {
    /// The original system's Hive database.
    pub const DEFAULT: &'static str = "intraday";

    pub fn new(name: impl Into<String>) -> Result<Self, CoreError> {
        let name = name.into();
        let ok = (1..=255).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with('_');
        if !ok {
            return Err(CoreError::InvalidDatabase(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for DatabaseName {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DatabaseName {
    type Error = CoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DatabaseName> for String {
    fn from(value: DatabaseName) -> Self {
        value.0
    }
}

impl JsonSchema for DatabaseName {
    fn schema_name() -> Cow<'static, str> {
        "DatabaseName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A Glue Data Catalog database name.",
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_]{0,254}$"
        })
    }
}

/// How the extractor writes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// Parquet with zstd: columns id, record_timestamp, record.
    #[default]
    Parquet,
    /// The original's three text columns, quoted, gzip-compressed.
    CsvGzip,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::CsvGzip => "csv-gzip",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parquet" => Ok(OutputFormat::Parquet),
            "csv-gzip" => Ok(OutputFormat::CsvGzip),
            other => Err(CoreError::UnknownFormat(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins_s3_locations() {
        let root = S3Uri::parse("s3://intraday-output/data").expect("valid");
        assert_eq!(root.bucket(), "intraday-output");
        assert_eq!(root.as_prefix().to_string(), "s3://intraday-output/data/");
        let run = root
            .join("core_claimant/run=20240311-1030/")
            .expect("valid");
        assert_eq!(run.key(), "data/core_claimant/run=20240311-1030/");
        assert_eq!(S3Uri::parse("s3://bucket").expect("root").key(), "");
    }

    #[test]
    fn refuses_locations_that_name_the_problem() {
        let cases = [
            ("http://x/y", "it must start with `s3://`"),
            ("s3://B/x", "`B` is not a bucket name"),
            ("s3://bucket/a/../b", "the key holds a `.` or `..` segment"),
            ("s3://bucket/a//b", "the key holds an empty segment"),
            ("s3://bucket/a\nb", "the key holds a control character"),
        ];
        for (uri, reason) in cases {
            let err = S3Uri::parse(uri).expect_err(uri).to_string();
            assert!(
                err.starts_with(&format!("invalid S3 location `{uri}`: {reason}")),
                "{err}"
            );
        }
    }

    #[test]
    fn database_names_are_glue_names() {
        assert_eq!(DatabaseName::default().as_str(), "intraday");
        assert!(DatabaseName::new("intraday_backfill_2").is_ok());
        for bad in ["", "Intraday", "a-b", "_x", "a;b"] {
            let err = DatabaseName::new(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn formats_parse_by_their_flag_names() {
        assert_eq!(
            "csv-gzip".parse::<OutputFormat>(),
            Ok(OutputFormat::CsvGzip)
        );
        assert_eq!(
            "csv".parse::<OutputFormat>().unwrap_err().to_string(),
            "unknown output format `csv`; use `parquet` or `csv-gzip`"
        );
    }
}
