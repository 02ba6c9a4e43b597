//! What to register for a finished extraction, decided from the message alone: per
//! collection an external table, the run's partition and the "latest" views. No AWS here;
//! the handler hands these specs to the catalog adapter.
//!
//! Layout (the extractor's): `<root>/<db>_<table>/run=<YYYYMMDD-HHMM>/<files>`. The table's
//! location is the collection folder and each run is a partition `run=<YYYYMMDD-HHMM>` at its
//! own folder, so a run becomes readable only when it is registered, which happens after
//! its manifest was written and read.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use intraday_aws::{Column, PartitionSpec, Storage, TableInfo, TableSpec, ViewSpec};
use intraday_core::{Collection, DatabaseName, OutputFormat, S3Uri};
use intraday_events::{CollectionResult, ExtractionCompleted};

use crate::TableBuilderError;

/// The partition key of every table: the run's folder name.
pub const PARTITION_KEY: &str = "run";

/// Athena's name for the Glue Data Catalog, as its own views record it.
pub const ATHENA_CATALOG: &str = "awsdatacatalog";

/// Suffix of the Athena/Trino-encoded copy of the latest view. The original's name,
/// `v_<db>_<table>_latest`, stays with Hive, whose users query it today.
pub const ATHENA_VIEW_SUFFIX: &str = "_athena";

const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
const OPEN_CSV_SERDE: &str = "org.apache.hadoop.hive.serde2.OpenCSVSerde";
/// OpenCSV's escape character: one the extractor's CSV never holds (see [`storage`]).
pub const CSV_ESCAPE: &str = "\u{1}";

/// Everything to register for one collection of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionTables {
    pub collection: Collection,
    pub table: TableSpec,
    /// `None` when the collection had no records: the extractor wrote nothing to read, and
    /// an empty partition per run would only slow down partition listing.
    pub partition: Option<PartitionSpec>,
    /// The Hive view (the original's name), then its Athena/Trino-encoded copy.
    pub views: Vec<ViewSpec>,
}

/// The table's columns. Parquet stores the timestamp as a number; the CSV keeps the
/// original's three text columns, so tables over old and new CSV read alike.
pub fn columns(format: OutputFormat) -> Vec<Column> {
    let timestamp = match format {
        OutputFormat::Parquet => "bigint",
        OutputFormat::CsvGzip => "string",
    };
    vec![
        Column::new("id", "string"),
        Column::new("record_timestamp", timestamp),
        Column::new("record", "string"),
    ]
}

/// How Hive, Spark and Athena read the files.
pub fn storage(format: OutputFormat) -> Storage {
    match format {
        OutputFormat::Parquet => Storage {
            input_format: PARQUET_INPUT.to_owned(),
            output_format: PARQUET_OUTPUT.to_owned(),
            serde_library: PARQUET_SERDE.to_owned(),
            serde_parameters: BTreeMap::from([("serialization.format".to_owned(), "1".to_owned())]),
            compressed: false,
        },
        // OpenCSVSerde, not LazySimpleSerDe: every field is quoted and a JSON record holds
        // commas. The extractor writes RFC 4180 (quotes doubled, nothing escaped), which
        // OpenCSV reads whatever the escape character, as long as that character never
        // occurs: OpenCSV always has one (a backslash when none is set, see Hive's
        // `OpenCSVSerde.newReader`) and drops it where it escapes nothing, which would
        // corrupt every `\n` or `\"` inside a JSON record. U+0001 cannot occur: JSON escapes
        // control characters, the id is JSON and the timestamp digits. Hive already keeps
        // U+0001 in SerDe parameters (LazySimpleSerDe's default delimiter).
        // TextInputFormat reads gzip by the `.gz` file suffix.
        OutputFormat::CsvGzip => Storage {
            input_format: TEXT_INPUT.to_owned(),
            output_format: TEXT_OUTPUT.to_owned(),
            serde_library: OPEN_CSV_SERDE.to_owned(),
            serde_parameters: BTreeMap::from([
                ("separatorChar".to_owned(), ",".to_owned()),
                ("quoteChar".to_owned(), "\"".to_owned()),
                ("escapeChar".to_owned(), CSV_ESCAPE.to_owned()),
            ]),
            compressed: true,
        },
    }
}

/// The external table `<db>_<table>` over the collection folder `location`.
pub fn table_spec(collection: &Collection, format: OutputFormat, location: &S3Uri) -> TableSpec {
    let classification = match format {
        OutputFormat::Parquet => "parquet",
        OutputFormat::CsvGzip => "csv",
    };
    // No `skip.header.line.count`: the CSV has no header line (see the README).
    let mut parameters = BTreeMap::from([
        ("EXTERNAL".to_owned(), "TRUE".to_owned()),
        ("classification".to_owned(), classification.to_owned()),
    ]);
    if format == OutputFormat::CsvGzip {
        parameters.insert("compressionType".to_owned(), "gzip".to_owned());
    }
    TableSpec {
        name: collection.hive_table(),
        columns: columns(format),
        partition_keys: vec![Column::new(PARTITION_KEY, "string")],
        location: location.as_prefix().to_string(),
        storage: storage(format),
        parameters,
    }
}

/// Suffix of the table over the original system's output.
pub const LEGACY_TABLE_SUFFIX: &str = "_legacy";

/// The original system's folder for a collection: `<db>_<table>` with the table's case as
/// the secret writes it (its S3 keys kept it; only Hive folds names).
pub fn legacy_folder(collection: &Collection) -> String {
    format!("{}_{}", collection.db(), collection.table())
}

/// `<db>_<table>_legacy`: a table over the original's output, `<folder>/<YYYYMMDD-HHMM>/`
/// files of CSV as Python's `csv` module writes it (quotes only where needed, doubled inside)
/// with the original's three text columns. Each folder is a partition `run` at its own
/// location, as Intraday's own runs are. OpenCSVSerde reads quoted and unquoted fields alike;
/// the escape character is U+0001 for the reason [`storage`] gives. The files are LZO
/// (`.lzo`, hadoop-lzo's `LzopCodec`): a cluster reads them only with that codec installed,
/// as the original's clusters had it.
pub fn legacy_table_spec(collection: &Collection, location: &S3Uri) -> TableSpec {
    let mut storage = storage(OutputFormat::CsvGzip);
    storage.compressed = true;
    TableSpec {
        name: format!("{}{LEGACY_TABLE_SUFFIX}", collection.hive_table()),
        columns: columns(OutputFormat::CsvGzip),
        partition_keys: vec![Column::new(PARTITION_KEY, "string")],
        location: location.as_prefix().to_string(),
        storage,
        parameters: BTreeMap::from([
            ("EXTERNAL".to_owned(), "TRUE".to_owned()),
            ("classification".to_owned(), "csv".to_owned()),
            ("compressionType".to_owned(), "lzo".to_owned()),
        ]),
    }
}

/// The latest row per `id`: the largest `record_timestamp`, and of equal timestamps the one
/// from the newest run (`run` sorts as time), so the answer never depends on scan order.
/// `run` is left out of the result: the view keeps the original view's three columns.
/// `quote` quotes an identifier in the dialect at hand.
fn latest_sql(database: &DatabaseName, table: &str, quote: fn(&str) -> String) -> String {
    format!(
        "SELECT id, record_timestamp, record FROM (SELECT t.*, row_number() OVER \
         (PARTITION BY id ORDER BY CAST(record_timestamp AS BIGINT) DESC, run DESC) AS rn \
         FROM {}.{} t) x WHERE rn = 1",
        quote(database.as_str()),
        quote(table)
    )
}

/// Database and table names may start with a digit, which Trino accepts only quoted.
fn presto_quote(name: &str) -> String {
    format!("\"{name}\"")
}

fn hive_quote(name: &str) -> String {
    format!("`{name}`")
}

/// A column type as Presto/Trino/Athena name it.
fn presto_type(hive_type: &str) -> &str {
    match hive_type {
        "string" => "varchar",
        other => other,
    }
}

/// `v_<db>_<table>_latest_athena` in the encoding Athena and Trino read: a `VIRTUAL_VIEW` whose
/// `ViewOriginalText` is `/* Presto View: <base64 of the view JSON> */`, marked by
/// `presto_view=true` and the comment `Presto View`. Hive cannot read it (see the README).
pub fn presto_view(
    database: &DatabaseName,
    collection: &Collection,
    format: OutputFormat,
) -> ViewSpec {
    let columns = columns(format);
    let definition = serde_json::json!({
        "originalSql": latest_sql(database, &collection.hive_table(), presto_quote),
        "catalog": ATHENA_CATALOG,
        "schema": database.as_str(),
        "columns": columns
            .iter()
            .map(|c| serde_json::json!({"name": c.name, "type": presto_type(&c.hive_type)}))
            .collect::<Vec<_>>(),
    });
    ViewSpec {
        name: format!("{}{ATHENA_VIEW_SUFFIX}", collection.latest_view()),
        columns,
        original_text: format!(
            "/* Presto View: {} */",
            BASE64.encode(definition.to_string())
        ),
        expanded_text: "/* Presto View */".to_owned(),
        parameters: BTreeMap::from([
            ("presto_view".to_owned(), "true".to_owned()),
            ("comment".to_owned(), "Presto View".to_owned()),
        ]),
    }
}

/// `v_<db>_<table>_latest`, the original's view for Hive on EMR: stored as Hive stores one,
/// HiveQL as written and fully qualified. Athena cannot query Hive views in the Glue catalog,
/// hence a second view for it.
pub fn hive_view(
    database: &DatabaseName,
    collection: &Collection,
    format: OutputFormat,
) -> ViewSpec {
    let table = format!(
        "{}.{}",
        hive_quote(database.as_str()),
        hive_quote(&collection.hive_table())
    );
    ViewSpec {
        name: collection.latest_view(),
        columns: columns(format),
        original_text: latest_sql(database, &collection.hive_table(), hive_quote),
        expanded_text: format!(
            "SELECT `x`.`id`, `x`.`record_timestamp`, `x`.`record` FROM (SELECT `t`.`id`, \
             `t`.`record_timestamp`, `t`.`record`, `t`.`run`, row_number() OVER (PARTITION BY \
             `t`.`id` ORDER BY CAST(`t`.`record_timestamp` AS BIGINT) DESC, `t`.`run` DESC) AS \
             `rn` FROM {table} `t`) `x` WHERE `x`.`rn` = 1"
        ),
        parameters: BTreeMap::new(),
    }
}

/// A string literal for Hive and Spark SQL: quotes and backslashes escaped, anything outside
/// printable ASCII as `\uXXXX` (both parsers read that), so U+0001 survives the round trip.
fn sql_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            other => {
                let mut units = [0u16; 2];
                for unit in other.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('\'');
    out
}

fn properties(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{} = {}", sql_literal(k), sql_literal(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| format!("{} {}", hive_quote(&c.name), c.hive_type))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table as Hive DDL, from the very spec the catalog gets: what to run to make it in a
/// Hive metastore of one's own, and what the Spark test runs.
pub fn hive_ddl(database: &str, spec: &TableSpec) -> String {
    let mut ddl = format!(
        "CREATE EXTERNAL TABLE {}.{} ({})",
        hive_quote(database),
        hive_quote(&spec.name),
        column_list(&spec.columns)
    );
    if !spec.partition_keys.is_empty() {
        ddl.push_str(&format!(
            " PARTITIONED BY ({})",
            column_list(&spec.partition_keys)
        ));
    }
    ddl.push_str(&format!(
        " ROW FORMAT SERDE {}",
        sql_literal(&spec.storage.serde_library)
    ));
    if !spec.storage.serde_parameters.is_empty() {
        ddl.push_str(&format!(
            " WITH SERDEPROPERTIES ({})",
            properties(&spec.storage.serde_parameters)
        ));
    }
    ddl.push_str(&format!(
        " STORED AS INPUTFORMAT {} OUTPUTFORMAT {} LOCATION {}",
        sql_literal(&spec.storage.input_format),
        sql_literal(&spec.storage.output_format),
        sql_literal(&spec.location)
    ));
    // `EXTERNAL` is said by CREATE EXTERNAL TABLE; Hive refuses it as a property.
    let parameters: BTreeMap<String, String> = spec
        .parameters
        .iter()
        .filter(|(k, _)| k.as_str() != "EXTERNAL")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !parameters.is_empty() {
        ddl.push_str(&format!(" TBLPROPERTIES ({})", properties(&parameters)));
    }
    ddl
}

/// One partition as Hive DDL.
pub fn hive_partition_ddl(database: &str, spec: &TableSpec, partition: &PartitionSpec) -> String {
    let values = spec
        .partition_keys
        .iter()
        .zip(&partition.values)
        .map(|(k, v)| format!("{} = {}", hive_quote(&k.name), sql_literal(v)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "ALTER TABLE {}.{} ADD PARTITION ({values}) LOCATION {}",
        hive_quote(database),
        hive_quote(&spec.name),
        sql_literal(&partition.location)
    )
}

/// A Hive view as Hive DDL: its HiveQL as registered.
pub fn hive_view_ddl(database: &str, view: &ViewSpec) -> String {
    format!(
        "CREATE VIEW {}.{} AS {}",
        hive_quote(database),
        hive_quote(&view.name),
        view.original_text
    )
}

/// The output format a table's SerDe reads, by our name where it is one of ours.
fn format_of(serde_library: Option<&str>) -> String {
    match serde_library {
        Some(PARQUET_SERDE) => OutputFormat::Parquet.as_str().to_owned(),
        Some(OPEN_CSV_SERDE) => OutputFormat::CsvGzip.as_str().to_owned(),
        Some(other) => other.to_owned(),
        None => "no SerDe".to_owned(),
    }
}

/// Why the catalog's `current` table cannot become `wanted`, or `None` when it can.
///
/// A table never spans formats: engines read every partition through the table's schema, and
/// Parquet's `bigint` timestamp and the CSV's `string` cannot be read together (Spark with
/// Hive's SerDes fails on the old partitions with `Cannot inspect LongWritable`; the other
/// way round it reads `.csv.gz` files as Parquet). A table that is not partitioned by `run`
/// is not one of ours, typically the original's over its own folders: redefining it would
/// hide those folders from everyone who queries it.
pub fn refuse_change(current: &TableInfo, wanted: &TableSpec) -> Option<String> {
    if current.table_type.as_deref() == Some("VIRTUAL_VIEW") {
        return Some("it is a view, not a table".to_owned());
    }
    let keys: Vec<&str> = current
        .partition_keys
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if keys != [PARTITION_KEY] {
        return Some(format!(
            "it is not partitioned by `{PARTITION_KEY}` (partition keys: [{}]), so it is not one \
             of Intraday's (the original's?) and redefining it would hide its data",
            keys.join(", ")
        ));
    }
    let (have, want) = (
        format_of(current.serde_library.as_deref()),
        format_of(Some(&wanted.storage.serde_library)),
    );
    (have != want).then(|| {
        format!("its partitions are {have} and this run wrote {want}; one table cannot hold both")
    })
}

/// `YYYYMMDD-HHMM`: it becomes a partition value and a folder name, so nothing else is let in.
fn valid_run(run: &str) -> bool {
    let bytes = run.as_bytes();
    bytes.len() == 13
        && bytes[8] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
}

/// The collection folder holding `output_prefix`, which must be `…/<db>_<table>/run=<run>/`:
/// registering a table over any other folder would expose the wrong files.
fn collection_folder(result: &CollectionResult, run: &str) -> Result<S3Uri, String> {
    let prefix = result.output_prefix.as_prefix();
    let expected = format!("…/{}/run={run}/", result.collection.hive_table());
    let wrong = || {
        format!(
            "the output of `{}` is {prefix}, not {expected}",
            result.collection
        )
    };
    let key = prefix.key().trim_end_matches('/');
    let (parent, run_folder) = key.rsplit_once('/').ok_or_else(wrong)?;
    let table_folder = parent.rsplit('/').next().unwrap_or(parent);
    if run_folder != format!("run={run}") || table_folder != result.collection.hive_table() {
        return Err(wrong());
    }
    S3Uri::new(prefix.bucket(), &format!("{parent}/")).map_err(|e| e.to_string())
}

/// Checks the message and derives what to register for each of its collections.
pub fn plan(event: &ExtractionCompleted) -> Result<Vec<CollectionTables>, TableBuilderError> {
    let invalid = |reason: String| TableBuilderError::Invalid {
        run: event.correlation_id.to_string(),
        reason,
    };
    if !valid_run(&event.run) {
        return Err(invalid(format!(
            "`run` is `{}`, not YYYYMMDD-HHMM",
            event.run
        )));
    }
    if event.collections.is_empty() {
        return Err(invalid("it names no collection".to_owned()));
    }
    let mut seen = BTreeSet::new();
    event
        .collections
        .iter()
        .map(|result| {
            if !seen.insert(&result.collection) {
                return Err(invalid(format!("`{}` is listed twice", result.collection)));
            }
            // Without it the watermark could not move; completing would silently extract
            // the same records again next run.
            if result.records > 0 && result.largest_timestamp_ms.is_none() {
                return Err(invalid(format!(
                    "`{}` has {} records but no largest_timestamp_ms",
                    result.collection, result.records
                )));
            }
            let folder = collection_folder(result, &event.run).map_err(invalid)?;
            let partition = (result.records > 0).then(|| PartitionSpec {
                values: vec![event.run.clone()],
                location: result.output_prefix.as_prefix().to_string(),
            });
            Ok(CollectionTables {
                collection: result.collection.clone(),
                table: table_spec(&result.collection, event.format, &folder),
                partition,
                views: vec![
                    hive_view(&event.database, &result.collection, event.format),
                    presto_view(&event.database, &result.collection, event.format),
                ],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use intraday_events::Message;

    fn sample() -> ExtractionCompleted {
        match Message::parse(include_str!(
            "../../../events/samples/extraction-completed.json"
        )) {
            Ok(Message::ExtractionCompleted(e)) => e,
            other => panic!("the sample is an ExtractionCompleted: {other:?}"),
        }
    }

    fn claimant() -> Collection {
        Collection::parse("db.core.claimant").expect("collection")
    }

    #[test]
    fn each_format_has_its_columns_formats_and_serde() {
        let location = S3Uri::parse("s3://out-bucket/data/core_claimant/").expect("uri");
        let cases = [
            (
                OutputFormat::Parquet,
                "bigint",
                PARQUET_INPUT,
                PARQUET_OUTPUT,
                PARQUET_SERDE,
                "parquet",
                false,
            ),
            (
                OutputFormat::CsvGzip,
                "string",
                TEXT_INPUT,
                TEXT_OUTPUT,
                OPEN_CSV_SERDE,
                "csv",
                true,
            ),
        ];
        for (format, timestamp, input, output, serde, classification, compressed) in cases {
            let spec = table_spec(&claimant(), format, &location);
            assert_eq!(spec.name, "core_claimant");
            assert_eq!(
                spec.columns,
                [
                    Column::new("id", "string"),
                    Column::new("record_timestamp", timestamp),
                    Column::new("record", "string"),
                ],
                "{format:?}"
            );
            assert_eq!(spec.partition_keys, [Column::new("run", "string")]);
            assert_eq!(spec.location, "s3://out-bucket/data/core_claimant/");
            assert_eq!(spec.storage.input_format, input);
            assert_eq!(spec.storage.output_format, output);
            assert_eq!(spec.storage.serde_library, serde);
            assert_eq!(spec.storage.compressed, compressed);
            assert_eq!(spec.parameters["EXTERNAL"], "TRUE");
            assert_eq!(spec.parameters["classification"], classification);
            assert!(!spec.parameters.contains_key("skip.header.line.count"));
        }
        let csv = storage(OutputFormat::CsvGzip).serde_parameters;
        assert_eq!(csv["separatorChar"], ",");
        assert_eq!(csv["quoteChar"], "\"");
        assert_eq!(csv["escapeChar"], "\u{1}");
    }

    #[test]
    fn the_presto_view_decodes_to_the_definition_athena_reads() {
        let database = DatabaseName::new("1_intraday").expect("database");
        let cases = [
            (OutputFormat::Parquet, "bigint"),
            (OutputFormat::CsvGzip, "varchar"),
        ];
        for (format, timestamp) in cases {
            let view = presto_view(&database, &claimant(), format);
            assert_eq!(view.name, "v_core_claimant_latest_athena");
            assert_eq!(view.expanded_text, "/* Presto View */");
            assert_eq!(view.parameters["presto_view"], "true");
            assert_eq!(view.parameters["comment"], "Presto View");
            assert_eq!(view.columns, columns(format));
            let encoded = view
                .original_text
                .strip_prefix("/* Presto View: ")
                .and_then(|s| s.strip_suffix(" */"))
                .expect("Presto view envelope");
            let json: serde_json::Value =
                serde_json::from_slice(&BASE64.decode(encoded).expect("base64")).expect("json");
            assert_eq!(
                json,
                serde_json::json!({
                    "originalSql": "SELECT id, record_timestamp, record FROM (SELECT t.*, \
                        row_number() OVER (PARTITION BY id ORDER BY CAST(record_timestamp AS \
                        BIGINT) DESC, run DESC) AS rn FROM \"1_intraday\".\"core_claimant\" t) x \
                        WHERE rn = 1",
                    "catalog": "awsdatacatalog",
                    "schema": "1_intraday",
                    "columns": [
                        {"name": "id", "type": "varchar"},
                        {"name": "record_timestamp", "type": timestamp},
                        {"name": "record", "type": "varchar"},
                    ],
                }),
                "{format:?}"
            );
        }
    }

    #[test]
    fn the_hive_view_is_plain_hiveql() {
        let view = hive_view(&DatabaseName::default(), &claimant(), OutputFormat::Parquet);
        assert_eq!(view.name, "v_core_claimant_latest");
        assert!(view.parameters.is_empty());
        assert!(
            view.original_text
                .ends_with("FROM `intraday`.`core_claimant` t) x WHERE rn = 1"),
            "{}",
            view.original_text
        );
        assert!(
            view.expanded_text
                .contains("FROM `intraday`.`core_claimant` `t`) `x` WHERE `x`.`rn` = 1"),
            "{}",
            view.expanded_text
        );
        assert!(!view.expanded_text.contains("Presto"));
    }

    #[test]
    fn the_sample_plans_a_partition_only_where_records_were_written() {
        let plan = plan(&sample()).expect("plan");
        assert_eq!(plan.len(), 2);
        let (claimant, contract) = (&plan[0], &plan[1]);
        assert_eq!(
            claimant.table.location,
            "s3://intraday-output-123456789012-eu-west-2/data/core_claimant/"
        );
        assert_eq!(
            claimant.partition,
            Some(PartitionSpec {
                values: vec!["20240311-1030".to_owned()],
                location: "s3://intraday-output-123456789012-eu-west-2/data/core_claimant/run=20240311-1030/".to_owned(),
            })
        );
        assert_eq!(contract.table.name, "core_contract");
        assert_eq!(contract.partition, None);
        assert_eq!(
            contract
                .views
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>(),
            ["v_core_contract_latest", "v_core_contract_latest_athena"]
        );
    }

    #[test]
    fn inconsistent_messages_are_refused_naming_the_problem() {
        type Edit = fn(&mut ExtractionCompleted);
        let cases: [(Edit, &str); 7] = [
            (
                |e| e.run = "2024-03-11".to_owned(),
                "`run` is `2024-03-11`, not YYYYMMDD-HHMM",
            ),
            (|e| e.run = "20240311-10301".to_owned(), "not YYYYMMDD-HHMM"),
            (|e| e.collections.clear(), "it names no collection"),
            (
                |e| {
                    let again = e.collections[0].clone();
                    e.collections.push(again);
                },
                "`db.core.claimant` is listed twice",
            ),
            (
                |e| e.collections[0].largest_timestamp_ms = None,
                "`db.core.claimant` has 1520 records but no largest_timestamp_ms",
            ),
            (
                |e| {
                    e.collections[0].output_prefix =
                        S3Uri::parse("s3://b-1/data/core_contract/run=20240311-1030/").expect("uri")
                },
                "the output of `db.core.claimant` is s3://b-1/data/core_contract/run=20240311-1030/, not …/core_claimant/run=20240311-1030/",
            ),
            (
                |e| {
                    e.collections[0].output_prefix =
                        S3Uri::parse("s3://b-1/data/core_claimant/run=20240311-1130/").expect("uri")
                },
                "not …/core_claimant/run=20240311-1030/",
            ),
        ];
        for (edit, want) in cases {
            let mut event = sample();
            edit(&mut event);
            let err = plan(&event).expect_err(want).to_string();
            assert!(
                err.starts_with(
                    "ExtractionCompleted for run `scheduled-20240311-1030` is not valid: "
                ) && err.contains(want),
                "{err}"
            );
        }
    }

    #[test]
    fn an_output_prefix_at_the_bucket_root_still_has_a_collection_folder() {
        let mut event = sample();
        event.collections[0].output_prefix =
            S3Uri::parse("s3://b-1/core_claimant/run=20240311-1030").expect("uri");
        let plan = plan(&event).expect("plan");
        assert_eq!(plan[0].table.location, "s3://b-1/core_claimant/");
        assert_eq!(
            plan[0].partition.as_ref().map(|p| p.location.as_str()),
            Some("s3://b-1/core_claimant/run=20240311-1030/")
        );
    }

    #[test]
    fn a_table_keeps_its_format_and_a_table_not_ours_is_never_redefined() {
        let c = Collection::parse("core:claimant").expect("valid");
        let folder = S3Uri::parse("s3://bucket/data/core_claimant/").expect("uri");
        let as_catalog = |spec: &TableSpec, table_type: &str| TableInfo {
            name: spec.name.clone(),
            table_type: Some(table_type.to_owned()),
            columns: spec.columns.clone(),
            partition_keys: spec.partition_keys.clone(),
            location: Some(spec.location.clone()),
            input_format: Some(spec.storage.input_format.clone()),
            output_format: Some(spec.storage.output_format.clone()),
            serde_library: Some(spec.storage.serde_library.clone()),
            serde_parameters: spec.storage.serde_parameters.clone(),
            compressed: spec.storage.compressed,
            parameters: spec.parameters.clone(),
            view_original_text: None,
            view_expanded_text: None,
            version_id: None,
            update_time_ms: None,
        };
        let parquet = table_spec(&c, OutputFormat::Parquet, &folder);
        let csv = table_spec(&c, OutputFormat::CsvGzip, &folder);
        let existing = as_catalog(&parquet, "EXTERNAL_TABLE");
        assert_eq!(refuse_change(&existing, &parquet), None);
        assert_eq!(
            refuse_change(&existing, &csv).as_deref(),
            Some(
                "its partitions are parquet and this run wrote csv-gzip; one table cannot hold both"
            )
        );
        let mut original = as_catalog(&csv, "EXTERNAL_TABLE");
        original.partition_keys.clear();
        assert!(
            refuse_change(&original, &csv)
                .is_some_and(|why| why.starts_with("it is not partitioned by `run`")),
        );
        assert_eq!(
            refuse_change(&as_catalog(&parquet, "VIRTUAL_VIEW"), &parquet).as_deref(),
            Some("it is a view, not a table")
        );
    }

    #[test]
    fn hive_ddl_says_what_the_catalog_gets() {
        let c = Collection::parse("core:claimant").expect("valid");
        let folder = S3Uri::parse("s3://bucket/data/core_claimant/").expect("uri");
        let csv = table_spec(&c, OutputFormat::CsvGzip, &folder);
        assert_eq!(
            hive_ddl("intraday", &csv),
            "CREATE EXTERNAL TABLE `intraday`.`core_claimant` (`id` string, `record_timestamp` string, \
             `record` string) PARTITIONED BY (`run` string) ROW FORMAT SERDE \
             'org.apache.hadoop.hive.serde2.OpenCSVSerde' WITH SERDEPROPERTIES ('escapeChar' = '\\u0001', \
             'quoteChar' = '\"', 'separatorChar' = ',') STORED AS INPUTFORMAT \
             'org.apache.hadoop.mapred.TextInputFormat' OUTPUTFORMAT \
             'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat' LOCATION \
             's3://bucket/data/core_claimant/' TBLPROPERTIES ('classification' = 'csv', \
             'compressionType' = 'gzip')"
        );
        let partition = PartitionSpec {
            values: vec!["20240311-1030".into()],
            location: "s3://bucket/data/core_claimant/run=20240311-1030/".into(),
        };
        assert_eq!(
            hive_partition_ddl("intraday", &csv, &partition),
            "ALTER TABLE `intraday`.`core_claimant` ADD PARTITION (`run` = '20240311-1030') \
             LOCATION 's3://bucket/data/core_claimant/run=20240311-1030/'"
        );
        assert_eq!(
            sql_literal("it's a \\ and é"),
            "'it\\'s a \\\\ and \\u00e9'"
        );
    }
}
