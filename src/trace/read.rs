//! Reading a torch-profiler Chrome trace one event at a time: plain or gzip JSON, the
//! `{"traceEvents": [...]}` object or a bare array. The trace is never held whole: a byte
//! scanner reads the file in blocks, finds where each event object of the events array
//! begins and ends (tracking strings, escapes and nesting; `memchr` jumps between the bytes
//! that matter), and each event is decoded from its own slice into the few fields analysis
//! uses, borrowing its strings from the block. Memory stays bounded by what the caller keeps
//! and the largest event, whatever the file's size.
//!
//! A malformed file is an error naming the file, the event index and its byte offset in
//! the (decompressed) JSON: a torn or truncated file, a damaged gzip stream, an event that
//! is not valid JSON, no `traceEvents`.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Visitor};

/// The fields of an event analysis reads, borrowed from the trace where they can be.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Event<'a> {
    /// Phase (`X` complete, `B`/`E`, `i`, `M` metadata, `f`/`s` flow, …).
    #[serde(default, borrow)]
    pub ph: Cow<'a, str>,
    /// Category (`kernel`, `gpu_memcpy`, `cpu_op`, `python_function`, …).
    #[serde(default, borrow)]
    pub cat: Cow<'a, str>,
    /// Name.
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    /// Process id (a number or a string in some traces).
    #[serde(default, borrow)]
    pub pid: Id<'a>,
    /// Thread id (the stream for GPU events).
    #[serde(default, borrow)]
    pub tid: Id<'a>,
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
pub struct Id<'a>(pub Cow<'a, str>);

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Id<'a>, D::Error> {
        d.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Id<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a process or thread id (a number or a string)")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'de>, E> {
        Ok(Id(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'de>, E> {
        Ok(Id(Cow::Owned(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id<'de>, E> {
        Ok(Id(Cow::Owned(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id<'de>, E> {
        Ok(Id(Cow::Owned(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Id<'de>, E> {
        Ok(Id(Cow::Owned(v.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Id<'de>, E> {
        Ok(Id::default())
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

/// Call `each` on every event of the trace at `path`, in file order; the number of events.
pub fn for_each_event(path: &Path, mut each: impl FnMut(&Event)) -> Result<u64, TraceError> {
    let fail = |what: String| TraceError {
        path: path.to_path_buf(),
        what,
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let gz = r
        .fill_buf()
        .map_err(|e| fail(e.to_string()))?
        .starts_with(&[0x1f, 0x8b]);
    let outcome = if gz {
        scan(flate2::read::MultiGzDecoder::new(r), &mut each)
    } else {
        scan(r, &mut each)
    };
    outcome.map_err(fail)
}

/// Bytes read per block.
const BLOCK: usize = 1 << 20;

/// Where the scanner is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Before the first value.
    Start,
    /// Inside the top-level object, looking for `traceEvents`.
    Object,
    /// Inside the events array, between events.
    Events,
    /// Past the events array.
    After,
}

/// The scanner's state across blocks.
struct Scanner {
    place: Place,
    /// Nesting depth (objects and arrays) in the document.
    depth: usize,
    /// Depth of the events array's elements.
    events_at: usize,
    in_string: bool,
    escaped: bool,
    /// The last string closed at the top object's key depth, and whether a key may follow.
    key: Vec<u8>,
    key_start: Option<usize>,
    /// Start of the event being read (index into the buffer).
    event_start: Option<usize>,
    found: bool,
    count: u64,
    /// Between events: the last thing read was an event (a comma or the end comes next).
    after_event: bool,
}

/// Scan `r`, calling `each` per event.
fn scan<R: Read>(mut r: R, each: &mut impl FnMut(&Event)) -> Result<u64, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * 2);
    // Bytes of the document dropped from the front of `buf`.
    let mut dropped: u64 = 0;
    let mut pos = 0usize;
    let mut s = Scanner {
        place: Place::Start,
        depth: 0,
        events_at: 0,
        in_string: false,
        escaped: false,
        key: Vec::new(),
        key_start: None,
        event_start: None,
        found: false,
        count: 0,
        after_event: false,
    };
    loop {
        let len = buf.len();
        buf.resize(len + BLOCK, 0);
        let n = read_full(&mut r, &mut buf[len..]).map_err(|e| {
            format!(
                "cannot read event {} (a damaged gzip stream?) at byte {}: {e}",
                s.count,
                dropped + len as u64
            )
        })?;
        buf.truncate(len + n);
        s.step(&buf, &mut pos, dropped, each)?;
        if n == 0 {
            break;
        }
        // Keep only what an unfinished event (or key) still needs.
        let keep = s.event_start.or(s.key_start).unwrap_or(pos).min(pos);
        if keep > 0 {
            buf.drain(..keep);
            dropped += keep as u64;
            pos -= keep;
            s.event_start = s.event_start.map(|x| x - keep);
            s.key_start = s.key_start.map(|x| x - keep);
        }
    }
    s.finish(dropped + buf.len() as u64)
}

/// Fill `out` as far as the reader goes (a short read before the end is not the end).
fn read_full<R: Read>(r: &mut R, out: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        match r.read(&mut out[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Scanner {
    /// Scan `buf` from `*pos` to its end.
    fn step(
        &mut self,
        buf: &[u8],
        pos: &mut usize,
        dropped: u64,
        each: &mut impl FnMut(&Event),
    ) -> Result<(), String> {
        let mut i = *pos;
        while i < buf.len() {
            if self.escaped {
                self.escaped = false;
                i += 1;
                continue;
            }
            if self.place == Place::Events && self.event_start.is_none() && !self.in_string {
                // Between events: only whitespace, one comma between two events, and the
                // array's end.
                let b = buf[i];
                let at = dropped + i as u64;
                match b {
                    b' ' | b'\n' | b'\r' | b'\t' => {}
                    b',' if self.after_event => self.after_event = false,
                    b'{' if !self.after_event => {
                        self.open(b, i, at)?;
                    }
                    b']' if self.after_event || self.count == 0 => {
                        self.close(buf, i, at, each)?;
                    }
                    _ => {
                        return Err(format!(
                            "event {} is not valid JSON: unexpected `{}` at byte {at}",
                            self.count,
                            char::from(b)
                        ));
                    }
                }
                i += 1;
                continue;
            }
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => {
                        i = buf.len();
                        break;
                    }
                    Some(k) => {
                        i += k;
                        if buf[i] == b'\\' {
                            // Skip the escaped byte (it may lie in the next block).
                            if i + 1 >= buf.len() {
                                self.escaped = true;
                                i += 1;
                                break;
                            }
                            i += 2;
                        } else {
                            self.in_string = false;
                            self.close_string(buf, i);
                            i += 1;
                        }
                        continue;
                    }
                }
            }
            // Inside an event only strings and braces matter.
            let k = if self.event_start.is_some() {
                memchr::memchr3(b'"', b'{', b'}', &buf[i..])
            } else {
                buf[i..]
                    .iter()
                    .position(|b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'))
            };
            let Some(k) = k else {
                i = buf.len();
                break;
            };
            i += k;
            let at = dropped + i as u64;
            match buf[i] {
                b'"' => {
                    self.in_string = true;
                    if self.place == Place::Object && self.depth == 1 && self.event_start.is_none()
                    {
                        self.key_start = Some(i + 1);
                    }
                }
                b'{' | b'[' => self.open(buf[i], i, at)?,
                _ => self.close(buf, i, at, each)?,
            }
            i += 1;
        }
        *pos = i;
        Ok(())
    }

    fn close_string(&mut self, buf: &[u8], end: usize) {
        if let Some(st) = self.key_start.take() {
            self.key.clear();
            self.key.extend_from_slice(&buf[st..end]);
        }
    }

    fn open(&mut self, b: u8, i: usize, at: u64) -> Result<(), String> {
        match self.place {
            Place::Start => {
                self.place = if b == b'{' {
                    Place::Object
                } else {
                    self.found = true;
                    self.events_at = 1;
                    Place::Events
                };
            }
            Place::Object if self.depth == 1 && b == b'[' && self.key == b"traceEvents" => {
                self.found = true;
                self.events_at = 2;
                self.place = Place::Events;
            }
            Place::Events if self.depth == self.events_at && self.event_start.is_none() => {
                if b != b'{' {
                    return Err(format!(
                        "event {} is not an object (at byte {at})",
                        self.count
                    ));
                }
                self.event_start = Some(i);
            }
            _ => {}
        }
        self.depth += 1;
        Ok(())
    }

    fn close(
        &mut self,
        buf: &[u8],
        i: usize,
        at: u64,
        each: &mut impl FnMut(&Event),
    ) -> Result<(), String> {
        self.depth = self
            .depth
            .checked_sub(1)
            .ok_or_else(|| format!("unbalanced `{}` at byte {at}", char::from(buf[i])))?;
        match (self.place, self.event_start) {
            (Place::Events, Some(st)) if self.depth == self.events_at => {
                let slice = &buf[st..=i];
                let ev: Event = serde_json::from_slice(slice).map_err(|e| {
                    format!(
                        "event {} (at byte {}) is not valid JSON ({e})",
                        self.count,
                        at + 1 - slice.len() as u64
                    )
                })?;
                each(&ev);
                self.count += 1;
                self.event_start = None;
                self.after_event = true;
            }
            (Place::Events, None) if self.depth + 1 == self.events_at => {
                self.place = Place::After;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self, total: u64) -> Result<u64, String> {
        if self.depth > 0 || self.in_string {
            return Err(format!(
                "the trace ends in the middle of event {} (a torn or truncated file), at byte {total}",
                self.count
            ));
        }
        if !self.found {
            return Err("no `traceEvents` array (not a Chrome trace)".into());
        }
        Ok(self.count)
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
            let n = for_each_event(p, |e| {
                got.push((e.args.clone(), e.pid.to_string(), e.tid.to_string(), e.dur))
            });
            assert_eq!(n.unwrap(), 2);
            assert_eq!(got[0].0.correlation, Some(3));
            assert_eq!(got[0].0.external_id, Some(4));
            assert_eq!((got[0].2.as_str(), got[0].3), ("7", 2.0));
            assert_eq!(got[1].1, "a");
        }
    }

    #[test]
    fn strings_with_braces_escapes_and_events_across_blocks_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        // A name full of the scanner's special bytes, escaped quotes and backslashes, and one
        // long enough to cross two block boundaries.
        let tricky = r#"a \"}{][\\\" b"#;
        let long = "x".repeat(BLOCK * 2 + 17);
        let text = format!(
            r#"{{"meta":{{"k":["traceEvents",{{"traceEvents":1}}]}},"traceEvents":[{{"ph":"X","name":"{tricky}","args":{{"Input Dims":[[1,2],[3]],"s":"}}"}}}} , {{"name":"{long}","pid":"p"}}],"after":[1,{{"x":"]"}}]}}"#
        );
        let p = write(dir.path(), "t.json", &text);
        let mut names = Vec::new();
        assert_eq!(
            for_each_event(&p, |e| names.push(e.name.to_string())).unwrap(),
            2
        );
        assert_eq!(names[0], "a \"}{][\\\" b");
        assert_eq!(names[1].len(), long.len());
        // The events array as the whole document, and an empty one.
        let bare = write(dir.path(), "b.json", r#" [ {"name":"k"} ] "#);
        assert_eq!(for_each_event(&bare, |_| {}).unwrap(), 1);
        let empty = write(dir.path(), "e.json", r#"{"traceEvents":[]}"#);
        assert_eq!(for_each_event(&empty, |_| {}).unwrap(), 0);
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
        assert!(e.contains("event 1") && e.contains("at byte 27"), "{e}");
        let bad = write(
            dir.path(),
            "bad2.json",
            r#"{"traceEvents":[{"ph":"X"},{"ph":}]}"#,
        );
        let e = for_each_event(&bad, |_| {}).unwrap_err().to_string();
        assert!(e.contains("event 1 (at byte 27) is not valid JSON"), "{e}");
        let bad = write(
            dir.path(),
            "bad3.json",
            r#"{"traceEvents":[{"ph":"X"} {"ph":"X"}]}"#,
        );
        let e = for_each_event(&bad, |_| {}).unwrap_err().to_string();
        assert!(e.contains("event 1") && e.contains("unexpected `{`"), "{e}");
        // A gzip stream cut short.
        let src = std::fs::read(crate::trace::tests_fixture("hta-triton-example.json.gz")).unwrap();
        let cut = dir.path().join("cut.json.gz");
        std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
        let e = for_each_event(&cut, |_| {}).unwrap_err().to_string();
        assert!(e.contains("cut.json.gz"), "{e}");
    }
}
