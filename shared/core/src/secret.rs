//! The collections secret. The original stores `SecretString` as base64 of a Python-literal
//! dict: `{"collections_all": {"db.<db>.<table>": {"db": ..., "table": ..., "pii": "true"}}}`.
//! We read that exactly, and plain JSON (base64 or not) too.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::{Collection, CoreError, pyliteral};

/// One collection the secret lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionEntry {
    pub collection: Collection,
    /// Whether the records hold personal data; written as the `pii` tag on every object.
    pub pii: bool,
}

/// Every collection in the secret, by name, and the entries refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Collections {
    entries: BTreeMap<Collection, CollectionEntry>,
    refused: Vec<CoreError>,
}

impl Collections {
    /// Entries the parser refused, each a [`CoreError::SecretEntry`] naming the entry and why.
    /// The original read each entry on its own, so one bad entry stops only itself.
    pub fn refused(&self) -> &[CoreError] {
        &self.refused
    }

    pub fn get(&self, collection: &Collection) -> Option<&CollectionEntry> {
        self.entries.get(collection)
    }

    pub fn iter(&self) -> impl Iterator<Item = &CollectionEntry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries for the named collections, or an error naming the first one the secret
    /// does not list.
    pub fn select<'a>(
        &'a self,
        names: impl IntoIterator<Item = &'a Collection>,
    ) -> Result<Vec<&'a CollectionEntry>, CoreError> {
        names
            .into_iter()
            .map(|c| {
                self.get(c).ok_or_else(|| CoreError::InvalidCollection {
                    name: c.name(),
                    reason: format!(
                        "the collections secret does not list it (it lists {})",
                        self.entries
                            .keys()
                            .map(Collection::name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            })
            .collect()
    }
}

/// Reads the secret's `SecretString`.
pub fn parse_collections_secret(secret_string: &str) -> Result<Collections, CoreError> {
    let trimmed = secret_string.trim();
    let text = if trimmed.starts_with('{') {
        trimmed.to_owned()
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| {
                CoreError::SecretFormat(format!(
                    "it is neither a JSON object nor base64 ({e}); store base64 of the \
                     collections dict, as the original system does"
                ))
            })?;
        String::from_utf8(bytes).map_err(|_| {
            CoreError::SecretFormat("its base64 does not decode to UTF-8 text".to_owned())
        })?
    };
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(value) => value,
        Err(_) => pyliteral::parse(&text).map_err(|e| {
            CoreError::SecretFormat(format!("it is neither JSON nor a Python literal: {e}"))
        })?,
    };
    let all = value
        .get("collections_all")
        .ok_or_else(|| CoreError::SecretFormat("it has no `collections_all` key".to_owned()))?
        .as_object()
        .ok_or_else(|| {
            CoreError::SecretFormat("`collections_all` is not a dict of collections".to_owned())
        })?;

    let mut entries: BTreeMap<Collection, CollectionEntry> = BTreeMap::new();
    let mut keys: BTreeMap<Collection, &str> = BTreeMap::new();
    let mut refused = Vec::new();
    for (name, body) in all {
        match parse_entry(name, body) {
            Ok(entry) => match keys.get(&entry.collection) {
                Some(first) => refused.push(CoreError::SecretEntry {
                    entry: name.clone(),
                    reason: format!(
                        "it names `{}`, as entry `{first}` does already",
                        entry.collection.job_key()
                    ),
                }),
                None => {
                    keys.insert(entry.collection.clone(), name);
                    entries.insert(entry.collection.clone(), entry);
                }
            },
            Err(e) => refused.push(e),
        }
    }
    Ok(Collections { entries, refused })
}

/// One entry. As in the original, the collection is built from the value's `db` and `table`
/// and the key is only a label: an entry whose key disagrees with its value still names the
/// HBase table `<db>:<table>` the original scanned and recorded.
fn parse_entry(name: &str, body: &Value) -> Result<CollectionEntry, CoreError> {
    let bad = |reason: String| CoreError::SecretEntry {
        entry: name.to_owned(),
        reason,
    };
    let fields = body
        .as_object()
        .ok_or_else(|| bad("its value is not a dict".to_owned()))?;
    let field = |field: &str| match fields.get(field) {
        Some(Value::String(got)) => Ok(got.as_str()),
        Some(_) => Err(bad(format!("field `{field}` is not a string"))),
        None => Err(bad(format!("field `{field}` is missing"))),
    };
    let collection =
        Collection::new(field("db")?, field("table")?).map_err(|e| bad(e.to_string()))?;
    let pii = match fields.get("pii") {
        // The original tagged every object `pii=true`: an entry that does not say is treated
        // as personal data, the safe side for objects that hold decrypted records.
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(bad(format!(
                "field `pii` is {other}; use \"true\" or \"false\""
            )));
        }
    };
    Ok(CollectionEntry { collection, pii })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    const ORIGINAL: &str = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}, 'db.core.contract': {'db': 'core', 'table': 'contract', 'pii': 'false'}}}";

    #[test]
    fn reads_the_original_base64_python_literal() {
        let collections = parse_collections_secret(&b64(ORIGINAL)).expect("valid secret");
        let names: Vec<_> = collections
            .iter()
            .map(|e| (e.collection.name(), e.pii))
            .collect();
        assert_eq!(
            names,
            [
                ("db.core.claimant".to_owned(), true),
                ("db.core.contract".to_owned(), false)
            ]
        );
    }

    #[test]
    fn an_entry_that_does_not_say_is_personal_data() {
        let text = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant'}}}";
        let collections = parse_collections_secret(&b64(text)).expect("valid secret");
        assert!(collections.iter().all(|e| e.pii), "{collections:?}");
    }

    #[test]
    fn reads_plain_and_base64_json() {
        let json = r#"{"collections_all": {"db.core.claimant": {"db": "core", "table": "claimant", "pii": true}}}"#;
        let plain = parse_collections_secret(json).expect("plain JSON");
        let encoded = parse_collections_secret(&b64(json)).expect("base64 JSON");
        assert_eq!(plain, encoded);
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn a_broken_secret_says_which_entry_and_why() {
        let cases = [
            (
                "not base64!".to_owned(),
                "collections secret is not valid: it is neither a JSON object nor base64",
            ),
            (
                b64("{'other': {}}"),
                "collections secret is not valid: it has no `collections_all` key",
            ),
            (
                b64("{'collections_all': ["),
                "collections secret is not valid: it is neither JSON nor a Python literal: unexpected end of text",
            ),
        ];
        for (secret, want) in cases {
            let err = parse_collections_secret(&secret)
                .expect_err(want)
                .to_string();
            assert!(err.starts_with(want), "want {want:?}, got {err:?}");
        }
    }

    #[test]
    fn a_bad_entry_is_refused_alone_naming_it_and_why() {
        let entries = [
            "'db.core.ok': {'db': 'core', 'table': 'ok'}",
            "'db.core.x': {'db': 'core'}",
            "'db.core.y': {'db': 'core', 'table': 'x/..'}",
            "'db.core.z': {'db': 'core', 'table': 'z', 'pii': 'maybe'}",
            "'db.core.w': 'core:w'",
            "'db.core.ok_again': {'db': 'core', 'table': 'ok'}",
        ];
        let text = format!("{{'collections_all': {{{}}}}}", entries.join(", "));
        let collections = parse_collections_secret(&b64(&text)).expect("the secret is readable");
        let names: Vec<_> = collections.iter().map(|e| e.collection.job_key()).collect();
        assert_eq!(names, ["core:ok"]);
        let refused: Vec<_> = collections
            .refused()
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = [
            "collections secret entry `db.core.x` is not valid: field `table` is missing",
            "collections secret entry `db.core.y` is not valid: invalid collection `db.core.x/..`: the table name holds '/'; only ASCII letters, digits and `_` are allowed",
            "collections secret entry `db.core.z` is not valid: field `pii` is \"maybe\"; use \"true\" or \"false\"",
            "collections secret entry `db.core.w` is not valid: its value is not a dict",
            "collections secret entry `db.core.ok_again` is not valid: it names `core:ok`, as entry `db.core.ok` does already",
        ];
        let mut got = refused.clone();
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn the_collection_comes_from_the_value_as_the_original_read_it() {
        let text =
            "{'collections_all': {'claimant (legacy name)': {'db': 'core', 'table': 'claimant'}}}";
        let collections = parse_collections_secret(&b64(text)).expect("valid secret");
        let names: Vec<_> = collections.iter().map(|e| e.collection.job_key()).collect();
        assert_eq!(names, ["core:claimant"]);
        assert!(collections.refused().is_empty());
    }

    #[test]
    fn select_names_a_collection_the_secret_does_not_list() {
        let collections = parse_collections_secret(&b64(ORIGINAL)).expect("valid");
        let missing = Collection::parse("db.core.nope").expect("valid name");
        let err = collections.select([&missing]).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid collection `db.core.nope`: the collections secret does not list it \
             (it lists db.core.claimant, db.core.contract)"
        );
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(text in "\\PC{0,200}") {
            let _ = parse_collections_secret(&text);
            let _ = parse_collections_secret(&b64(&text));
        }

        #[test]
        fn the_parser_never_panics_on_python_shaped_text(
            text in r#"[{}\[\]()'":, a-z0-9._\\TrueFalsNn-]{0,120}"#
        ) {
            let _ = parse_collections_secret(&text);
            let _ = parse_collections_secret(&b64(&text));
        }
    }
}
