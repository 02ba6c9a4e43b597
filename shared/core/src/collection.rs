//! Collection names: `db.<db>.<table>` as the secret's keys and our messages write them,
//! `<db>:<table>` in HBase and in the job table (the original keyed its items by the HBase
//! table name, so watermarks and failures carry over), `<db>_<table>` in Hive and in S3 paths.

use std::fmt;
use std::str::FromStr;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Longest database or table part we accept. HBase allows more, but every name also becomes
/// a Hive identifier and an S3 path segment, and Glue caps names at 255 characters.
const MAX_PART: usize = 100;

/// A validated collection. Both parts are ASCII letters, digits and underscores, starting
/// with a letter or digit, so a collection can never escape an S3 prefix (`/`, `..`), break a
/// shell line (quotes, spaces, `;`) or need quoting as a Hive identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Collection {
    db: String,
    table: String,
}

impl Collection {
    /// Builds a collection from its parts, validating both.
    pub fn new(db: &str, table: &str) -> Result<Self, CoreError> {
        let name = format!("db.{db}.{table}");
        validate_part(&name, "database", db)?;
        validate_part(&name, "table", table)?;
        Ok(Self {
            db: db.to_owned(),
            table: table.to_owned(),
        })
    }

    /// Parses `db.<db>.<table>` or the job table's `<db>:<table>`.
    pub fn parse(name: &str) -> Result<Self, CoreError> {
        let invalid = |reason: &str| CoreError::InvalidCollection {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        const FORMS: &str =
            "a collection is written `db.<database>.<table>` or `<database>:<table>`";
        let (db, table) = match name.strip_prefix("db.") {
            Some(rest) => rest.split_once('.'),
            None => name.split_once(':'),
        }
        .ok_or_else(|| invalid(FORMS))?;
        validate_part(name, "database", db)?;
        validate_part(name, "table", table)?;
        Ok(Self {
            db: db.to_owned(),
            table: table.to_owned(),
        })
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The name in the secret's keys and in our messages: `db.<db>.<table>`.
    pub fn name(&self) -> String {
        format!("db.{}.{}", self.db, self.table)
    }

    /// The HBase table: `<db>:<table>`.
    pub fn hbase_table(&self) -> String {
        format!("{}:{}", self.db, self.table)
    }

    /// The job table's `Collection` value: the HBase table name, as the original wrote it
    /// (`core:claimant`), in items, locks and both indexes.
    pub fn job_key(&self) -> String {
        self.hbase_table()
    }

    /// The Hive table and the S3 folder: `<db>_<table>`, lower case as Hive and Glue fold it.
    pub fn hive_table(&self) -> String {
        format!("{}_{}", self.db, self.table).to_ascii_lowercase()
    }

    /// The "latest record" view: `v_<db>_<table>_latest`.
    pub fn latest_view(&self) -> String {
        format!("v_{}_latest", self.hive_table())
    }

    /// Parses HBase's `<db>:<table>`.
    pub fn from_hbase_table(hbase: &str) -> Result<Self, CoreError> {
        let (db, table) = hbase
            .split_once(':')
            .ok_or_else(|| CoreError::InvalidCollection {
                name: hbase.to_owned(),
                reason: "an HBase table is written `<namespace>:<table>`".to_owned(),
            })?;
        Self::new(db, table)
    }
}

impl JsonSchema for Collection {
    fn schema_name() -> Cow<'static, str> {
        "Collection".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A collection, `db.<database>.<table>` (or the job table's `<database>:<table>`).",
            "type": "string",
            "pattern": r"^(db\.[A-Za-z0-9][A-Za-z0-9_]*\.[A-Za-z0-9][A-Za-z0-9_]*|[A-Za-z0-9][A-Za-z0-9_]*:[A-Za-z0-9][A-Za-z0-9_]*)$"
        })
    }
}

fn validate_part(name: &str, what: &str, part: &str) -> Result<(), CoreError> {
    let invalid = |reason: String| CoreError::InvalidCollection {
        name: name.to_owned(),
        reason,
    };
    if part.is_empty() {
        return Err(invalid(format!("the {what} name is empty")));
    }
    if part.len() > MAX_PART {
        return Err(invalid(format!(
            "the {what} name is longer than {MAX_PART} characters"
        )));
    }
    if let Some(bad) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(invalid(format!(
            "the {what} name holds {bad:?}; only ASCII letters, digits and `_` are allowed"
        )));
    }
    if part.starts_with('_') {
        return Err(invalid(format!(
            "the {what} name must start with a letter or digit"
        )));
    }
    Ok(())
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "db.{}.{}", self.db, self.table)
    }
}

impl FromStr for Collection {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Collection {
    type Error = CoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Collection> for String {
    fn from(value: Collection) -> Self {
        value.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn maps_to_hbase_hive_and_view_names() {
        let c = Collection::parse("db.core.claimant").expect("valid");
        assert_eq!(c.hbase_table(), "core:claimant");
        assert_eq!(c.hive_table(), "core_claimant");
        assert_eq!(c.latest_view(), "v_core_claimant_latest");
        assert_eq!(c.to_string(), "db.core.claimant");
        assert_eq!(c.job_key(), "core:claimant");
        assert_eq!(Collection::from_hbase_table("core:claimant"), Ok(c.clone()));
        assert_eq!(Collection::parse("core:claimant"), Ok(c));
    }

    #[test]
    fn refuses_names_that_could_escape_a_path_a_shell_or_hive() {
        let cases = [
            (
                "core.claimant",
                "a collection is written `db.<database>.<table>` or `<database>:<table>`",
            ),
            (
                "db.core",
                "a collection is written `db.<database>.<table>` or `<database>:<table>`",
            ),
            ("core:", "the table name is empty"),
            ("core:a:b", "the table name holds ':'"),
            (":claimant", "the database name is empty"),
            ("db..claimant", "the database name is empty"),
            ("db.core.", "the table name is empty"),
            ("db.core.a/b", "the table name holds '/'"),
            ("db.core.a.b", "the table name holds '.'"),
            ("db.core.x'; rm -rf /", "the table name holds '\\''"),
            ("db.co re.x", "the database name holds ' '"),
            ("db.core.x`y", "the table name holds '`'"),
            (
                "db._core.x",
                "the database name must start with a letter or digit",
            ),
            ("db.core.ü", "the table name holds 'ü'"),
        ];
        for (name, reason) in cases {
            let err = Collection::parse(name).expect_err(name).to_string();
            assert!(
                err.starts_with(&format!("invalid collection `{name}`: {reason}")),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn deserialising_validates() {
        let ok: Collection = serde_json::from_str("\"db.core.claimant\"").expect("valid");
        assert_eq!(ok.db(), "core");
        let err = serde_json::from_str::<Collection>("\"db.core.../x\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid collection `db.core.../x`"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn names_round_trip(db in "[A-Za-z0-9][A-Za-z0-9_]{0,20}", table in "[A-Za-z0-9][A-Za-z0-9_]{0,20}") {
            let c = Collection::new(&db, &table).expect("valid parts");
            prop_assert_eq!(Collection::parse(&c.name()), Ok(c.clone()));
            prop_assert_eq!(Collection::from_hbase_table(&c.hbase_table()), Ok(c.clone()));
            prop_assert_eq!(Collection::parse(&c.job_key()), Ok(c.clone()));
            let json = serde_json::to_string(&c).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<Collection>(&json).expect("parses"), c);
        }

        #[test]
        fn parse_never_panics_and_accepts_only_safe_names(name in "\\PC{0,40}") {
            if let Ok(c) = Collection::parse(&name) {
                prop_assert!(c.hive_table().chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
            }
        }
    }
}
