//! The previous translation, through serde_json with raw values: the
//! oracle the scanner of the parent module is tested against (same bytes
//! out for every input it accepts, and an error for every input it
//! refuses).

use crate::sync15::timestamp;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Rewrite a Sync list body into `out`; returns (records kept, excluded).
/// With `fields`, records keep only those fields besides `id` and
/// `last_modified` (Kinto's `_fields`).
pub fn rewrite_list(
    body: &[u8],
    exclude: &[String],
    fields: Option<&[String]>,
    out: &mut Vec<u8>,
) -> Result<(usize, usize), String> {
    let mut w = ListWriter {
        out,
        exclude,
        fields,
        kept: 0,
        dropped: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut w)
        .deserialize(&mut de)
        .map_err(|e| format!("records list: {e}"))?;
    de.end().map_err(|e| format!("records list: {e}"))?;
    Ok((w.kept, w.dropped))
}

/// Rewrite one Sync record into `out` (`fields` as in [`rewrite_list`]).
pub fn rewrite_record(
    body: &[u8],
    fields: Option<&[String]>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    RecordWriter {
        out,
        exclude: &[],
        fields,
    }
    .deserialize(&mut de)
    .map_err(|e| format!("record: {e}"))?;
    de.end().map_err(|e| format!("record: {e}"))
}

struct ListWriter<'o> {
    out: &'o mut Vec<u8>,
    exclude: &'o [String],
    fields: Option<&'o [String]>,
    kept: usize,
    dropped: usize,
}

impl<'de> DeserializeSeed<'de> for &mut ListWriter<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut ListWriter<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        loop {
            let start = self.out.len();
            if self.kept > 0 {
                self.out.push(b',');
            }
            let seed = RecordWriter {
                out: self.out,
                exclude: self.exclude,
                fields: self.fields,
            };
            match seq.next_element_seed(seed)? {
                None => {
                    self.out.truncate(start);
                    break;
                }
                Some(true) => self.kept += 1,
                Some(false) => {
                    self.out.truncate(start);
                    self.dropped += 1;
                }
            }
        }
        self.out.push(b']');
        Ok(())
    }
}

/// Writes one record; yields false when its id is excluded.
struct RecordWriter<'o> {
    out: &'o mut Vec<u8>,
    exclude: &'o [String],
    fields: Option<&'o [String]>,
}

impl<'de> DeserializeSeed<'de> for RecordWriter<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordWriter<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let out = self.out;
        out.push(b'{');
        let mut first = true;
        let mut keep = true;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let wanted = match self.fields {
                Some(f) => matches!(&*key.0, "id" | "modified") || f.iter().any(|n| *n == key.0),
                None => true,
            };
            if !wanted {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            if key.0 == "modified" {
                let ms = timestamp::seconds_to_ms(value.get())
                    .ok_or_else(|| de::Error::custom("modified is not a timestamp"))?;
                out.extend_from_slice(b"\"last_modified\":");
                out.extend_from_slice(ms.to_string().as_bytes());
                continue;
            }
            if !self.exclude.is_empty() && key.0 == "id" {
                let id: Cow<'_, str> =
                    serde_json::from_str::<Cow<'_, str>>(value.get()).unwrap_or_default();
                keep = !self.exclude.iter().any(|e| *e == id);
            }
            // Keys of Sync records are plain; serializing escapes any oddity.
            serde_json::to_writer(&mut *out, &*key.0).map_err(de::Error::custom)?;
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        Ok(keep)
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}
