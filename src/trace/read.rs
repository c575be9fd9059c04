//! Reading a torch-profiler Chrome trace one event at a time: plain or gzip JSON, the
//! `{"traceEvents": [...]}` object or a bare array. The trace is never held whole — each
//! event is decoded into the few fields analysis uses and handed to the caller — so memory
//! stays bounded by what the caller keeps, whatever the file's size. A malformed file is an
//! error naming the file, the event index reached and serde's line and column.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields of an event analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Event {
    /// Phase (`X` complete, `B`/`E`, `i`, `M` metadata, `f`/`s` flow, …).
    #[serde(default)]
    pub ph: String,
    /// Category (`kernel`, `gpu_memcpy`, `cpu_op`, `python_function`, …).
    #[serde(default)]
    pub cat: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Process id (a number or a string in some traces).
    #[serde(default)]
    pub pid: Id,
    /// Thread id (the stream for GPU events).
    #[serde(default)]
    pub tid: Id,
    /// Start, µs.
    #[serde(default)]
    pub ts: f64,
    /// Duration, µs.
    #[serde(default)]
    pub dur: f64,
    /// The arguments analysis joins on.
    #[serde(default)]
    pub args: Args,
}

/// The arguments analysis joins on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Args {
    /// CUDA/HIP correlation id (kernel ↔ runtime launch).
    #[serde(default)]
    pub correlation: Option<i64>,
    /// torch's External id (cpu_op ↔ launch ↔ kernel).
    #[serde(default, rename = "External id")]
    pub external_id: Option<i64>,
    /// The GPU stream.
    #[serde(default)]
    pub stream: Option<i64>,
}

/// A process or thread id: traces write numbers or strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Id(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }
}

/// A trace that could not be read, with where.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct TraceError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong and where.
    pub what: String,
}

/// Open `path` (gzip when it starts with gzip's magic bytes).
fn open(path: &Path) -> Result<Box<dyn Read>, TraceError> {
    let err = |e: std::io::Error| TraceError {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let mut r = BufReader::with_capacity(1 << 16, File::open(path).map_err(err)?);
    let gz = r.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    })
}

/// Call `each` on every event of the trace at `path`, in file order; the number of events.
pub fn for_each_event(path: &Path, mut each: impl FnMut(Event)) -> Result<u64, TraceError> {
    let reader = open(path)?;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut count = 0u64;
    let mut found = false;
    let seed = Top {
        each: &mut each,
        count: &mut count,
        found: &mut found,
    };
    let fail = |e: serde_json::Error, count: u64| TraceError {
        path: path.to_path_buf(),
        what: describe(&e, count),
    };
    seed.deserialize(&mut de).map_err(|e| fail(e, count))?;
    de.end().map_err(|e| fail(e, count))?;
    if !found {
        return Err(TraceError {
            path: path.to_path_buf(),
            what: "no `traceEvents` array (not a Chrome trace)".into(),
        });
    }
    Ok(count)
}

fn describe(e: &serde_json::Error, count: u64) -> String {
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Eof => format!(
            "the trace ends in the middle of event {count} (a torn or truncated file), at {at}"
        ),
        serde_json::error::Category::Io => {
            format!("cannot read event {count} (a damaged gzip stream?): {e}")
        }
        _ => format!("event {count} is not valid JSON ({e})"),
    }
}

/// The top level: an object with `traceEvents`, or the bare array.
struct Top<'a, F> {
    each: &'a mut F,
    count: &'a mut u64,
    found: &'a mut bool,
}

impl<'de, F: FnMut(Event)> DeserializeSeed<'de> for Top<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Event)> Visitor<'de> for Top<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Chrome trace: an object with `traceEvents`, or an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        *self.found = true;
        Events {
            each: self.each,
            count: self.count,
        }
        .visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "traceEvents" {
                *self.found = true;
                map.next_value_seed(Events {
                    each: &mut *self.each,
                    count: &mut *self.count,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The events array, streamed.
struct Events<'a, F> {
    each: &'a mut F,
    count: &'a mut u64,
}

impl<'de, F: FnMut(Event)> DeserializeSeed<'de> for Events<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Event)> Visitor<'de> for Events<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of trace events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(ev) = seq.next_element::<Event>()? {
            (self.each)(ev);
            *self.count += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn object_array_and_gzip_read_the_same_events() {
        let dir = tempfile::tempdir().unwrap();
        let evs = r#"[{"ph":"X","cat":"kernel","name":"k","pid":0,"tid":7,"ts":1.5,"dur":2,"args":{"correlation":3,"External id":4}},{"ph":"M","name":"process_name","pid":"a","tid":"b"}]"#;
        let obj = write(
            dir.path(),
            "o.json",
            &format!("{{\"schemaVersion\":1,\"traceEvents\":{evs},\"x\":[1,2]}}"),
        );
        let arr = write(dir.path(), "a.json", evs);
        let gz = dir.path().join("g.json.gz");
        let mut e =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(std::fs::read(&obj).unwrap().as_slice())
            .unwrap();
        e.finish().unwrap();
        for p in [&obj, &arr, &gz] {
            let mut got = Vec::new();
            assert_eq!(for_each_event(p, |e| got.push(e)).unwrap(), 2);
            assert_eq!(got[0].args.correlation, Some(3));
            assert_eq!(got[0].args.external_id, Some(4));
            assert_eq!(got[0].tid, Id("7".into()));
            assert_eq!(got[1].pid, Id("a".into()));
        }
    }

    #[test]
    fn malformed_traces_name_the_file_and_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let torn = write(
            dir.path(),
            "torn.json",
            r#"{"traceEvents":[{"ph":"X","name":"a"},{"ph":"X","na"#,
        );
        let e = for_each_event(&torn, |_| {}).unwrap_err().to_string();
        assert!(
            e.contains("torn.json") && e.contains("event 1") && e.contains("torn or truncated"),
            "{e}"
        );
        let none = write(dir.path(), "none.json", r#"{"schemaVersion":1}"#);
        let e = for_each_event(&none, |_| {}).unwrap_err().to_string();
        assert!(e.contains("no `traceEvents`"), "{e}");
        let bad = write(dir.path(), "bad.json", r#"{"traceEvents":[{"ph":"X"},]}"#);
        let e = for_each_event(&bad, |_| {}).unwrap_err().to_string();
        assert!(e.contains("event 1"), "{e}");
        // A gzip stream cut short.
        let src = std::fs::read(crate::trace::tests_fixture("hta-triton-example.json.gz")).unwrap();
        let cut = dir.path().join("cut.json.gz");
        std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
        let e = for_each_event(&cut, |_| {}).unwrap_err().to_string();
        assert!(e.contains("cut.json.gz"), "{e}");
    }
}
