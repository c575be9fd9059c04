//! The few facts forge needs from a GGUF file's header: the architecture and the context
//! length the model was trained with (`<arch>.context_length`), which is what llama-server
//! uses when `--ctx-size` is not given. Only the metadata key/value section is read; tensor
//! data is never touched.

use std::io::{BufReader, Read};
use std::path::Path;

/// GGUF magic, little-endian `GGUF`.
const MAGIC: &[u8; 4] = b"GGUF";
/// Longest key or string value accepted (guards against a corrupt length).
const MAX_STRING: u64 = 1 << 24;
/// Most metadata entries accepted.
const MAX_KV: u64 = 1 << 20;

/// Facts from a GGUF header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufFacts {
    /// `general.architecture` (`llama`, `qwen2`, ...).
    pub architecture: Option<String>,
    /// `<arch>.context_length`: the training context (llama-server's default `--ctx-size`).
    pub context_length: Option<u64>,
    /// `<arch>.block_count`: transformer layers (what `--n-gpu-layers` counts).
    pub block_count: Option<u64>,
}

/// Why a GGUF header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Unreadable or truncated.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not a GGUF file, or a header forge cannot walk.
    #[error("{path}: {why}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Read the header of the GGUF file at `path`.
pub fn read(path: &Path) -> Result<GgufFacts, GgufError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| GgufError::Io {
        path: name.clone(),
        source,
    })?;
    parse(BufReader::new(file)).map_err(|e| match e {
        ParseError::Io(source) => GgufError::Io { path: name, source },
        ParseError::Format(why) => GgufError::Format { path: name, why },
    })
}

enum ParseError {
    Io(std::io::Error),
    Format(String),
}

impl From<std::io::Error> for ParseError {
    fn from(e: std::io::Error) -> Self {
        ParseError::Io(e)
    }
}

/// Parse a GGUF header from a reader.
fn parse<R: Read>(mut r: R) -> Result<GgufFacts, ParseError> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(ParseError::Format("not a GGUF file (bad magic)".into()));
    }
    let version = read_u32(&mut r)?;
    if !(2..=3).contains(&version) {
        return Err(ParseError::Format(format!(
            "GGUF version {version} (forge reads 2 and 3)"
        )));
    }
    let _tensors = read_u64(&mut r)?;
    let n_kv = read_u64(&mut r)?;
    if n_kv > MAX_KV {
        return Err(ParseError::Format(format!("{n_kv} metadata entries")));
    }
    let mut ints: Vec<(String, u64)> = Vec::new();
    let mut arch = None;
    for _ in 0..n_kv {
        let key = read_string(&mut r)?;
        let ty = read_u32(&mut r)?;
        match value(&mut r, ty)? {
            Value::Str(s) if key == "general.architecture" => arch = Some(s),
            Value::Int(v) => ints.push((key, v)),
            _ => {}
        }
    }
    let find = |suffix: &str| {
        let a = arch.as_deref()?;
        let want = format!("{a}.{suffix}");
        ints.iter().find(|(k, _)| *k == want).map(|(_, v)| *v)
    };
    Ok(GgufFacts {
        context_length: find("context_length"),
        block_count: find("block_count"),
        architecture: arch,
    })
}

/// A metadata value, as far as forge cares.
enum Value {
    Int(u64),
    Str(String),
    Other,
}

fn value<R: Read>(r: &mut R, ty: u32) -> Result<Value, ParseError> {
    Ok(match ty {
        0 | 1 | 7 => Value::Int(u64::from(read_n::<R, 1>(r)?[0])),
        2 | 3 => Value::Int(u64::from(u16::from_le_bytes(read_n(r)?))),
        4 => Value::Int(u64::from(read_u32(r)?)),
        5 => Value::Int(u64::try_from(i32::from_le_bytes(read_n(r)?)).unwrap_or(0)),
        6 => {
            read_n::<R, 4>(r)?;
            Value::Other
        }
        8 => Value::Str(read_string(r)?),
        9 => {
            skip_array(r)?;
            Value::Other
        }
        10 => Value::Int(read_u64(r)?),
        11 => Value::Int(u64::try_from(i64::from_le_bytes(read_n(r)?)).unwrap_or(0)),
        12 => {
            read_n::<R, 8>(r)?;
            Value::Other
        }
        other => return Err(ParseError::Format(format!("unknown value type {other}"))),
    })
}

fn skip_array<R: Read>(r: &mut R) -> Result<(), ParseError> {
    let ty = read_u32(r)?;
    let n = read_u64(r)?;
    let width: u64 = match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => 0,
    };
    if width > 0 {
        let bytes = n
            .checked_mul(width)
            .ok_or_else(|| ParseError::Format("array too large".into()))?;
        let copied = std::io::copy(&mut r.take(bytes), &mut std::io::sink())?;
        if copied != bytes {
            return Err(ParseError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        return Ok(());
    }
    for _ in 0..n {
        value(r, ty)?;
    }
    Ok(())
}

fn read_n<R: Read, const N: usize>(r: &mut R) -> Result<[u8; N], ParseError> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn read_u32<R: Read>(r: &mut R) -> Result<u32, ParseError> {
    Ok(u32::from_le_bytes(read_n(r)?))
}

fn read_u64<R: Read>(r: &mut R) -> Result<u64, ParseError> {
    Ok(u64::from_le_bytes(read_n(r)?))
}

fn read_string<R: Read>(r: &mut R) -> Result<String, ParseError> {
    let n = read_u64(r)?;
    if n > MAX_STRING {
        return Err(ParseError::Format(format!("string of {n} bytes")));
    }
    let mut buf = Vec::new();
    r.take(n).read_to_end(&mut buf)?;
    if buf.len() as u64 != n {
        return Err(ParseError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, text: &str) {
        out.extend((text.len() as u64).to_le_bytes());
        out.extend(text.as_bytes());
    }

    /// A header with an array of strings, an f32 and the two keys forge reads.
    fn header() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "<s>");
        s(&mut b, "</s>");
        s(&mut b, "llama.rope.freq_base");
        b.extend(6u32.to_le_bytes());
        b.extend(10000f32.to_le_bytes());
        s(&mut b, "llama.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(8192u32.to_le_bytes());
        s(&mut b, "llama.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(30u32.to_le_bytes());
        b
    }

    #[test]
    fn reads_architecture_and_context_length() {
        let Ok(f) = parse(&header()[..]) else {
            panic!("parse failed")
        };
        assert_eq!(f.architecture.as_deref(), Some("llama"));
        assert_eq!(f.context_length, Some(8192));
        assert_eq!(f.block_count, Some(30));
    }

    #[test]
    fn rejects_other_files_and_truncation() {
        assert!(matches!(
            parse(&b"PK\x03\x04rest"[..]),
            Err(ParseError::Format(_))
        ));
        let h = header();
        assert!(matches!(parse(&h[..h.len() - 2]), Err(ParseError::Io(_))));
        let e = read(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/model.gguf: "),
            "{e}"
        );
    }
}
