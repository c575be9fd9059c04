//! Typed reads of a JSON request body's fields, with pydantic's lax coercions (an integer
//! may be written `2.0`, a float `2`) and a 400 naming the field when the type is wrong.
//! An absent field and `null` both read as `None` (vLLM's defaults then apply).

use serde_json::Value;

use super::api_error::BadRequest;

/// The field, unless absent or `null`.
pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// A boolean field.
pub fn boolean(v: &Value, key: &str) -> Result<Option<bool>, BadRequest> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(type_error(key, "a valid boolean")),
    }
}

/// A number field (pydantic `float`).
pub fn number(v: &Value, key: &str) -> Result<Option<f64>, BadRequest> {
    match field(v, key) {
        None => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| type_error(key, "a valid number")),
    }
}

/// An integer field (pydantic `int`: a float with no fractional part is accepted).
pub fn integer(v: &Value, key: &str) -> Result<Option<i64>, BadRequest> {
    match field(v, key) {
        None => Ok(None),
        Some(x) => as_int(x)
            .map(Some)
            .ok_or_else(|| type_error(key, "a valid integer")),
    }
}

/// An integer in `0..=u32::MAX`.
pub fn uint(v: &Value, key: &str) -> Result<Option<u32>, BadRequest> {
    match integer(v, key)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| type_error(key, "a valid non-negative integer")),
    }
}

/// A JSON value as an integer, if it is one.
pub fn as_int(x: &Value) -> Option<i64> {
    x.as_i64().or_else(|| {
        x.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

/// A list of integers (`stop_token_ids`).
pub fn int_list(v: &Value, key: &str) -> Result<Vec<i64>, BadRequest> {
    match field(v, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(as_int)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| type_error(key, "a valid list of integers")),
        Some(_) => Err(type_error(key, "a valid list")),
    }
}

/// A string or a list of strings (`stop`).
pub fn str_or_list(v: &Value, key: &str) -> Result<Vec<String>, BadRequest> {
    match field(v, key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| x.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| type_error(key, "a valid string or list of strings")),
        Some(_) => Err(type_error(key, "a valid string or list of strings")),
    }
}

/// pydantic's complaint about a field's type.
pub fn type_error(key: &str, what: &str) -> BadRequest {
    BadRequest {
        message: format!("{key}: Input should be {what}"),
        param: Some(key.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lax_types() {
        let v = json!({"a": 2.0, "b": 2, "c": "x", "d": null, "e": [1, 2.0], "f": "s"});
        assert_eq!(integer(&v, "a").unwrap(), Some(2));
        assert_eq!(number(&v, "b").unwrap(), Some(2.0));
        assert!(integer(&v, "c").is_err());
        assert_eq!(integer(&v, "d").unwrap(), None);
        assert_eq!(integer(&v, "zz").unwrap(), None);
        assert_eq!(int_list(&v, "e").unwrap(), vec![1, 2]);
        assert_eq!(str_or_list(&v, "f").unwrap(), vec!["s".to_string()]);
        assert!(uint(&json!({"n": -1}), "n").is_err());
        let e = boolean(&v, "c").unwrap_err();
        assert_eq!(e.message, "c: Input should be a valid boolean");
        assert_eq!(e.param.as_deref(), Some("c"));
    }
}
