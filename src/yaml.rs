//! YAML in and out, through serde-saphyr, with the options in one place.
//!
//! In: YAML text (one document, or a stream of them) or any serialisable value.
//! Out: typed values, an order-keeping untyped [`Value`], the documents of a
//! stream numbered as they stand in it, and YAML text.
//!
//! Reading follows the YAML 1.2 core schema: `yes`, `no`, `on`, `off`, `0755`
//! and `1_000` are strings where no type says otherwise. Errors are one line
//! ending in "at line L, column C". Writing never folds a long string, and by
//! default quotes every string that a YAML 1.1 reader (kubectl, PyYAML in
//! cloud-init) would take for another type, such as `yes` or `12:30`.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::granit_parser::{Event, Marker, Parser};

/// A failure to read YAML; its text ends with the line and column.
pub use serde_saphyr::Error;
/// A position in YAML text: 1-based line and column.
pub use serde_saphyr::Location;
/// A failure to write YAML.
pub use serde_saphyr::SerializeError;

/// The reading options: YAML 1.2 scalars, one-line errors.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// Reads one document (empty input reads as null).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Reads one document into `T`, and on failure also says where in `T` it
/// failed, as a field path like `spec.disks[1].size` (`.` for the top).
pub fn from_str_with_path<T: DeserializeOwned>(text: &str) -> Result<T, (String, Box<Error>)> {
    let mut track = serde_path_to_error::Track::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |deserializer| {
        T::deserialize(serde_path_to_error::Deserializer::new(deserializer, &mut track))
    })
    .map_err(|error| (track.path().to_string(), Box::new(error)))
}

/// Writes one document, quoting strings that YAML 1.1 readers would take for
/// booleans, numbers or timestamps.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    serde_saphyr::to_string_with_options(value, serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX })
}

/// Writes one document, quoting only what YAML 1.2 requires: a plain scalar
/// read as a string (`yes`, `12:30`) is written back as it was spelled, so a
/// document read and written again means the same to a YAML 1.1 reader.
pub fn to_string_as_spelled<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX, yaml_12: true, no_lang_directive: true };
    serde_saphyr::to_string_with_options(value, options)
}

/// One document of a YAML stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The document's text, preceded by blank space standing for the text
    /// before it, so that lines and columns count from the start of the stream.
    text: String,
}

impl Document {
    /// Reads the document (an empty one reads as null).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        from_str(&self.text)
    }

    /// Reads the document into `T`; on failure, also the field path where it failed.
    pub fn parse_with_path<T: DeserializeOwned>(&self) -> Result<T, (String, Box<Error>)> {
        from_str_with_path(&self.text)
    }
}

/// The documents of a stream in order, empty ones included, so that the n-th
/// is document n as a reader counts them. After a syntax error the rest of the
/// input is one last document, whose parse reports that error.
pub fn documents(input: &str) -> Vec<Document> {
    let mut ends = Vec::new();
    for event in Parser::new_from_str(input) {
        match event {
            Ok((Event::DocumentEnd, span)) => ends.push(byte_offset(input, &span.end)),
            Ok(_) => {}
            Err(_) => {
                ends.push(input.len());
                break;
            }
        }
    }
    // Trailing comments belong to the last document.
    if let Some(last) = ends.last_mut() {
        *last = input.len();
    }
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let end = end.max(start);
            let before = &input[..start];
            let lines = before.matches('\n').count();
            let columns = before.rsplit('\n').next().unwrap_or_default().chars().count();
            let text = format!("{}{}{}", "\n".repeat(lines), " ".repeat(columns), &input[start..end]);
            start = end;
            Document { text }
        })
        .collect()
}

/// The byte offset of a parser position in `input`.
fn byte_offset(input: &str, marker: &Marker) -> usize {
    let offset = marker.byte_offset().unwrap_or_else(|| input.char_indices().nth(marker.index()).map_or(input.len(), |(offset, _)| offset));
    // Never inside a character, so that slicing cannot fail.
    (offset..=input.len()).find(|offset| input.is_char_boundary(*offset)).unwrap_or(input.len())
}

/// A mapping whose keys keep their document order.
pub type Mapping = IndexMap<String, Value>;

/// Any YAML value, for documents that are read, edited and written back:
/// unlike `serde_json::Value`, mappings keep the order of their keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer or a float.
    Number(serde_json::Number),
    /// Any other scalar.
    String(String),
    /// A list.
    Sequence(Vec<Value>),
    /// A mapping.
    Mapping(Mapping),
}

impl Value {
    /// Whether the value is a list.
    pub fn is_sequence(&self) -> bool {
        matches!(self, Value::Sequence(_))
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(flag) => serializer.serialize_bool(*flag),
            Value::Number(number) => number.serialize(serializer),
            Value::String(text) => serializer.serialize_str(text),
            Value::Sequence(items) => serializer.collect_seq(items),
            Value::Mapping(mapping) => serializer.collect_map(mapping),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Number(number.into()))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Value, E> {
        Ok(Value::Number(number.into()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(number).map(Value::Number).ok_or_else(|| E::custom(format!("failed to keep the number \"{number}\"")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_string()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut mapping = Mapping::new();
        while let Some((key, value)) = map.next_entry()? {
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_follow_yaml_1_2() {
        let value: serde_json::Value = from_str("a: yes\nb: on\nc: 0755\nd: 0o755\ne: 1_000\nf: true\ng: 12:30\nh: ~\n").expect("yaml");
        let expected = serde_json::json!({"a": "yes", "b": "on", "c": "0755", "d": 493, "e": "1_000", "f": true, "g": "12:30", "h": null});
        assert_eq!(value, expected);
    }

    #[test]
    fn strings_that_yaml_1_1_reads_otherwise_are_quoted() {
        let written = to_string(&["yes", "on", "12:30", "0755", "plain"]).expect("yaml");
        assert_eq!(written, "- \"yes\"\n- \"on\"\n- \"12:30\"\n- \"0755\"\n- plain\n");
        let as_spelled = to_string_as_spelled(&["yes", "on", "12:30", "0755", "plain"]).expect("yaml");
        assert_eq!(as_spelled, "- yes\n- on\n- 12:30\n- \"0755\"\n- plain\n");
    }

    #[test]
    fn long_strings_stay_on_one_line() {
        let key = format!("ssh-ed25519 {} user@example", "A".repeat(100));
        assert_eq!(to_string(&key).expect("yaml"), format!("{key}\n"));
    }

    #[test]
    fn values_keep_key_order_and_spelling() {
        let text = "zeta: 1\nalpha:\n  mode: yes\n  permissions: 0644\n  list: [b, a]\n";
        let value: Value = from_str(text).expect("yaml");
        assert_eq!(
            to_string_as_spelled(&value).expect("yaml"),
            "zeta: 1\nalpha:\n  mode: yes\n  permissions: \"0644\"\n  list:\n  - b\n  - a\n"
        );
    }

    #[test]
    fn documents_are_numbered_as_they_stand_empty_ones_included() {
        let input = "# head\n---\n---\na: 1\n---\n\n...\n%YAML 1.2\n---\nb: [x, y]\n--- c\n# tail\n";
        let parsed: Vec<serde_json::Value> = documents(input).iter().map(|document| document.parse().expect("yaml")).collect();
        let expected = [
            serde_json::Value::Null,
            serde_json::json!({"a": 1}),
            serde_json::Value::Null,
            serde_json::json!({"b": ["x", "y"]}),
            "c".into(),
        ];
        assert_eq!(parsed, expected);
        assert!(documents("").is_empty());
        assert!(documents("# only a comment\n").is_empty());
    }

    #[test]
    fn errors_count_lines_from_the_start_of_the_stream() {
        let input = "a: 1\n---\nb: 2\n---\nc: [x\nd: 4\n";
        let found = documents(input);
        assert_eq!(found.len(), 3);
        let error = found[2].parse::<serde_json::Value>().expect_err("a syntax error");
        let location = error.location().expect("a location");
        assert_eq!((location.line(), location.column()), (6, 2), "{error}");
        assert!(!error.to_string().contains('\n'), "{error}");
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Only {
            #[allow(dead_code)]
            b: u32,
        }
        let (path, error) = documents("b: 1\n---\nb: 2\nc: 3\n")[1].parse_with_path::<Only>().expect_err("an unknown field");
        let location = error.location().expect("a location");
        assert_eq!((path.as_str(), location.line(), location.column()), ("c", 4, 1), "{error}");
    }
}
