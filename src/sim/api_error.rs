//! A request the simulator refuses with HTTP 400: vLLM's message and `param`, or the
//! simulator's own "… is not supported by the simulator" for what vLLM does and the
//! simulator cannot model. The HTTP side renders it as vLLM's `ErrorResponse`.

/// A 400 answer (`type: "BadRequestError"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadRequest {
    /// The message, as vLLM writes it.
    pub message: String,
    /// The field at fault (`param`), where vLLM names one.
    pub param: Option<String>,
}

impl BadRequest {
    /// A message with no field named (vLLM's plain `ValueError`s).
    pub fn new(message: impl Into<String>) -> BadRequest {
        BadRequest {
            message: message.into(),
            param: None,
        }
    }

    /// vLLM's `VLLMValidationError(sentence, parameter=…, value=…)`: its `str()` — what
    /// vLLM's `create_error_response` sends — appends `(parameter=P, value=V)`, and `param`
    /// is the parameter. `value` is Python's `str()` of the rejected value.
    pub fn vllm(sentence: &str, parameter: &str, value: Option<String>) -> BadRequest {
        let extras = match value {
            Some(v) => format!("parameter={parameter}, value={v}"),
            None => format!("parameter={parameter}"),
        };
        BadRequest {
            message: format!("{sentence} ({extras})"),
            param: Some(parameter.to_string()),
        }
    }

    /// A field vLLM honours and the simulator cannot produce meaningfully.
    pub fn unsupported(field: &str) -> BadRequest {
        BadRequest {
            message: format!("{field} is not supported by the simulator"),
            param: Some(field.to_string()),
        }
    }
}

/// Python's `str()` of a float (`-1.0`, `0.5`, `1e-07`, `inf`), as vLLM's messages print
/// the values they reject.
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        return py_exponent(x);
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// `1e-07`, `1.5e+16`: Python's shortest repr in exponent form.
fn py_exponent(x: f64) -> String {
    let s = format!("{x:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_str_adds_parameter_and_value() {
        let e = BadRequest::vllm(
            "temperature must be non-negative, got -1.0.",
            "temperature",
            Some(py_float(-1.0)),
        );
        assert_eq!(
            e.message,
            "temperature must be non-negative, got -1.0. (parameter=temperature, value=-1.0)"
        );
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = BadRequest::vllm("x.", "stream_options", None);
        assert_eq!(e.message, "x. (parameter=stream_options)");
        let e = BadRequest::unsupported("tools");
        assert_eq!(e.to_string(), "tools is not supported by the simulator");
    }

    #[test]
    fn floats_print_as_python() {
        assert_eq!(py_float(-1.0), "-1.0");
        assert_eq!(py_float(0.5), "0.5");
        assert_eq!(py_float(2.5), "2.5");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(1e-7), "1e-07");
        assert_eq!(py_float(3e20), "3e+20");
        assert_eq!(py_float(f64::INFINITY), "inf");
        assert_eq!(py_float(100.0), "100.0");
    }
}
