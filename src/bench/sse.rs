//! Incremental Server-Sent Events parser (the WHATWG event-stream grammar) for streamed
//! completions.
//!
//! Bytes arrive in reads that split frames anywhere — inside `data:`, between `\r` and
//! `\n`, inside a UTF-8 sequence — or pack several frames into one read. [`SseParser::feed`]
//! takes each read as it comes and calls back once per complete event; [`SseParser::finish`]
//! flushes a last frame that the server ended without the blank line (vLLM's client accepts
//! those too). Lines end in `\n`, `\r\n` or `\r`; `:` lines are comments; `event:` and `id:`
//! are kept; `data:` may or may not have a space after the colon; several `data:` lines join
//! with `\n`.
//!
//! The common frame — one `data:` line wholly inside one read — is handed to the callback as
//! a slice of that read, with no copy. Only frames that straddle reads are copied.

/// UTF-8 byte-order mark, ignored at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event. Slices borrow the parser or the read being fed, so they live only
/// for the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` type (empty when the frame named none, i.e. `message`).
    pub event: &'a [u8],
    /// The last `id:` seen on the stream (empty when none).
    pub id: &'a [u8],
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

/// Where the data of the event being assembled lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// No `data:` line yet.
    Empty,
    /// Exactly one `data:` line, still inside the read being fed (start, end).
    Borrowed(usize, usize),
    /// In `SseParser::data`.
    Owned,
}

/// A line (or a value within it) as a range of a buffer.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    buf: &'a [u8],
    start: usize,
    end: usize,
    /// `buf` is the read being fed, so a range of it stays valid until `feed` returns.
    borrowable: bool,
}

impl<'a> Line<'a> {
    fn input(buf: &'a [u8], start: usize, end: usize) -> Self {
        Line {
            buf,
            start,
            end,
            borrowable: true,
        }
    }

    /// A line the parser assembled itself from carried-over bytes: never borrowed.
    fn carried(buf: &'a [u8]) -> Self {
        Line {
            buf,
            start: 0,
            end: buf.len(),
            borrowable: false,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        &self.buf[self.start..self.end]
    }
}

/// Streaming parser state. Reuse one per response; buffers keep their capacity.
#[derive(Debug, Default)]
pub struct SseParser {
    /// An incomplete line carried over from earlier reads.
    partial: Vec<u8>,
    /// Data of the event being assembled, when it could not be borrowed.
    data: Vec<u8>,
    /// True when `data` holds the pending event's data (see [`Pending::Owned`]).
    owned: bool,
    /// `event:` of the event being assembled.
    event: Vec<u8>,
    /// Last event id.
    id: Vec<u8>,
    /// The previous read ended in `\r`: a `\n` opening the next read ends that same line.
    skip_lf: bool,
    /// Past the first line (a UTF-8 byte-order mark is only stripped from that one).
    started: bool,
}

impl SseParser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse one read, calling `emit` for every event it completes.
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(Event<'_>)) {
        let mut pos = self.skip_prefix(input);
        let mut pending = if self.owned {
            Pending::Owned
        } else {
            Pending::Empty
        };
        while let Some(i) = memchr::memchr2(b'\n', b'\r', &input[pos..]) {
            let end = pos + i;
            let next = self.terminator_end(input, end);
            if self.partial.is_empty() {
                self.line(Line::input(input, pos, end), &mut pending, &mut emit);
            } else {
                self.partial.extend_from_slice(&input[pos..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(Line::carried(&line), &mut pending, &mut emit);
                self.partial = line;
                self.partial.clear();
            }
            pos = next;
        }
        if let Pending::Borrowed(s, e) = pending {
            self.data.clear();
            self.data.extend_from_slice(&input[s..e]);
            pending = Pending::Owned;
        }
        self.owned = pending == Pending::Owned;
        self.partial.extend_from_slice(&input[pos..]);
    }

    /// End of stream: treat an unterminated last line as complete and dispatch the event
    /// in progress, as if the blank line had arrived.
    pub fn finish(&mut self, mut emit: impl FnMut(Event<'_>)) {
        let mut pending = if self.owned {
            Pending::Owned
        } else {
            Pending::Empty
        };
        let line = std::mem::take(&mut self.partial);
        if !line.is_empty() {
            self.line(Line::carried(&line), &mut pending, &mut emit);
        }
        self.line(Line::carried(&[]), &mut pending, &mut emit);
        self.partial = line;
        self.partial.clear();
        self.owned = false;
        self.skip_lf = false;
    }

    /// Skip a `\n` that completes a `\r` from the previous read.
    fn skip_prefix(&mut self, input: &[u8]) -> usize {
        if input.is_empty() {
            return 0;
        }
        usize::from(std::mem::take(&mut self.skip_lf) && input[0] == b'\n')
    }

    /// Index just past the line terminator starting at `end` (`\n`, `\r\n` or `\r`).
    fn terminator_end(&mut self, input: &[u8], end: usize) -> usize {
        if input[end] == b'\n' {
            return end + 1;
        }
        match input.get(end + 1) {
            Some(b'\n') => end + 2,
            Some(_) => end + 1,
            None => {
                self.skip_lf = true;
                end + 1
            }
        }
    }

    /// Interpret one line (without its terminator).
    fn line(&mut self, mut l: Line<'_>, pending: &mut Pending, emit: &mut impl FnMut(Event<'_>)) {
        if !std::mem::replace(&mut self.started, true) && l.bytes().starts_with(BOM) {
            l.start += BOM.len();
        }
        let line = l.bytes();
        if line.is_empty() {
            self.dispatch(l.buf, *pending, emit);
            *pending = Pending::Empty;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value_at) = match memchr::memchr(b':', line) {
            Some(c) if line.get(c + 1) == Some(&b' ') => (&line[..c], c + 2),
            Some(c) => (&line[..c], c + 1),
            None => (line, line.len()),
        };
        let value = Line {
            start: l.start + value_at,
            ..l
        };
        match name {
            b"data" => self.data_line(value, pending),
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value.bytes());
            }
            b"id" if !value.bytes().contains(&0) => {
                self.id.clear();
                self.id.extend_from_slice(value.bytes());
            }
            _ => {}
        }
    }

    /// Append a `data:` value: borrow it when it is the event's first and lies in the
    /// caller's read; copy otherwise.
    fn data_line(&mut self, v: Line<'_>, pending: &mut Pending) {
        match *pending {
            Pending::Empty if v.borrowable => *pending = Pending::Borrowed(v.start, v.end),
            Pending::Empty => {
                self.data.clear();
                self.data.extend_from_slice(v.bytes());
                *pending = Pending::Owned;
            }
            Pending::Borrowed(s, e) => {
                self.data.clear();
                self.data.extend_from_slice(&v.buf[s..e]);
                self.data.push(b'\n');
                self.data.extend_from_slice(v.bytes());
                *pending = Pending::Owned;
            }
            Pending::Owned => {
                self.data.push(b'\n');
                self.data.extend_from_slice(v.bytes());
            }
        }
    }

    /// Blank line: hand the event over (if it has data) and reset the per-event fields.
    fn dispatch(&mut self, buf: &[u8], pending: Pending, emit: &mut impl FnMut(Event<'_>)) {
        let data: &[u8] = match pending {
            Pending::Empty => {
                self.event.clear();
                return;
            }
            Pending::Borrowed(s, e) => &buf[s..e],
            Pending::Owned => &self.data,
        };
        emit(Event {
            event: &self.event,
            id: &self.id,
            data,
        });
        self.event.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (event, id, data) as owned strings, for comparing whole streams.
    type Owned = (String, String, String);

    fn collect(reads: &[&[u8]]) -> Vec<Owned> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut push = |e: Event<'_>| {
            out.push((
                String::from_utf8_lossy(e.event).into_owned(),
                String::from_utf8_lossy(e.id).into_owned(),
                String::from_utf8_lossy(e.data).into_owned(),
            ))
        };
        for r in reads {
            p.feed(r, &mut push);
        }
        p.finish(&mut push);
        out
    }

    fn ev(event: &str, id: &str, data: &str) -> Owned {
        (event.into(), id.into(), data.into())
    }

    /// A recorded stream with every oddity the parser must survive.
    const RECORDED: &[u8] = b"\xEF\xBB\xBF: keep-alive comment\r\n\r\n\
data: {\"choices\":[{\"text\":\"h\xC3\xA9\"}]}\n\n\
data:{\"no\":\"space\"}\r\n\r\n\
event: update\nid: 7\ndata: line one\ndata: line two\n\n\
retry: 10\nunknown: x\ndata\n\n\
data: cr only\r\rdata: [DONE]";

    fn expected() -> Vec<Owned> {
        vec![
            ev("", "", "{\"choices\":[{\"text\":\"h\u{e9}\"}]}"),
            ev("", "", "{\"no\":\"space\"}"),
            ev("update", "7", "line one\nline two"),
            // A bare `data` line is a data field with an empty value.
            ev("", "7", ""),
            ev("", "7", "cr only"),
            // The last frame has no blank line after it: flushed at EOF.
            ev("", "7", "[DONE]"),
        ]
    }

    #[test]
    fn recorded_stream_in_one_read() {
        assert_eq!(collect(&[RECORDED]), expected());
    }

    #[test]
    fn every_single_split_point_gives_the_same_events() {
        for i in 0..=RECORDED.len() {
            let (a, b) = RECORDED.split_at(i);
            assert_eq!(collect(&[a, b]), expected(), "split at {i}");
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_the_same_events() {
        let n = RECORDED.len();
        for i in 0..=n {
            for j in i..=n {
                let reads = [&RECORDED[..i], &RECORDED[i..j], &RECORDED[j..]];
                assert_eq!(collect(&reads), expected(), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn bom_split_anywhere_is_stripped() {
        let s = b"\xEF\xBB\xBFdata: x\n\n";
        for i in 0..=s.len() {
            assert_eq!(collect(&[&s[..i], &s[i..]]), vec![ev("", "", "x")], "{i}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let reads: Vec<&[u8]> = RECORDED.chunks(1).collect();
        assert_eq!(collect(&reads), expected());
    }

    #[test]
    fn several_frames_in_one_read_are_borrowed_not_copied() {
        let input = b"data: a\n\ndata: b\n\n";
        let mut p = SseParser::new();
        let mut ptrs = Vec::new();
        p.feed(input, |e| ptrs.push(e.data.as_ptr()));
        assert_eq!(ptrs.len(), 2);
        assert_eq!(ptrs[0], input[6..].as_ptr());
        assert_eq!(ptrs[1], input[15..].as_ptr());
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_terminator() {
        // "\r" ends a read and "\n" opens the next: one line end, not an empty line.
        let got = collect(&[b"data: x\r", b"\ndata: y\r\n\r\n"]);
        assert_eq!(got, vec![ev("", "", "x\ny")]);
        // An empty read in between must not lose the pending `\r`.
        let got = collect(&[b"data: x\r", b"", b"\ndata: y\r\n\r\n"]);
        assert_eq!(got, vec![ev("", "", "x\ny")]);
    }

    #[test]
    fn comment_only_and_empty_frames_dispatch_nothing() {
        assert!(collect(&[b": ping\n\n\n\n: pong\n\n"]).is_empty());
        assert!(collect(&[b"event: x\n\n"]).is_empty());
        assert!(collect(&[b""]).is_empty());
    }

    #[test]
    fn parser_is_reusable_after_finish() {
        let mut p = SseParser::new();
        let mut n = 0;
        p.feed(b"data: a", |_| n += 1);
        p.finish(|_| n += 1);
        p.feed(b"data: b\n\n", |e| {
            assert_eq!(e.data, b"b");
            n += 1
        });
        assert_eq!(n, 2);
    }
}
