//! A SGLang recipe as that framework's command line, and base engine arguments
//! (`--engine-args`) back into recipe config values.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::recipe::Illegal;

/// The recipe config values `argv` (`--engine-args`) set.
pub fn config_from_args(argv: &[String]) -> Result<BTreeMap<String, Value>, Illegal> {
    let _ = argv;
    Err(Illegal::recipe("--engine-args: not yet read for SGLang"))
}
