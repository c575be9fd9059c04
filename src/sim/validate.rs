//! Boot-time validation of a resolved config against a model, with vLLM's ValueError texts
//! (`vllm/config/model.py`, `vllm/config/scheduler.py`, `vllm/config/parallel.py`), in the
//! order vLLM checks them: the context limit, tensor parallelism, then the scheduler.

use super::interface::BootError;
use super::model::ModelShape;
use crate::engine::vllm::VllmConfig;

fn value_error(msg: String) -> BootError {
    BootError::Config(format!("ValueError: {msg}"))
}

/// The context limit in force: `--max-model-len`, else the model's
/// `max_position_embeddings`; above the latter is vLLM's error.
pub fn max_model_len(model: &ModelShape, c: &VllmConfig) -> Result<u32, BootError> {
    let derived = model.max_position_embeddings;
    match c.max_model_len {
        None => Ok(derived),
        Some(0) => Err(value_error(
            "max_model_len must be at least 1, got 0.".into(),
        )),
        Some(l) if l > derived => Err(value_error(format!(
            "User-specified max_model_len ({l}) is greater than the derived max_model_len \
             (max_position_embeddings={derived}.0 or model_max_length=None in model's \
             config.json). To allow overriding this maximum, set the env var \
             VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. VLLM_ALLOW_LONG_MAX_MODEL_LEN must be used with \
             extreme caution. If the model uses relative position encoding (RoPE), positions \
             exceeding derived_max_model_len lead to nan. If the model uses absolute position \
             encoding, positions exceeding derived_max_model_len will cause a CUDA array \
             out-of-bounds error."
        ))),
        Some(l) => Ok(l),
    }
}

/// pydantic's error for a field below its `ge=1` bound, as vLLM's config dataclasses raise
/// it (`SchedulerConfig.max_num_seqs`, `ParallelConfig.tensor_parallel_size`, …).
fn below_one(config: &str, field: &str, v: u32) -> BootError {
    BootError::Config(format!(
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for {config}\n{field}\n  \
         Input should be greater than or equal to 1 [type=greater_than_equal, input_value={v}, \
         input_type=int]"
    ))
}

/// Counts that must be at least 1: a zero passes argparse and then never schedules anything.
fn check_counts(c: &VllmConfig) -> Result<(), BootError> {
    for (config, field, v) in [
        ("SchedulerConfig", "max_num_seqs", c.max_num_seqs),
        (
            "SchedulerConfig",
            "max_num_batched_tokens",
            c.max_num_batched_tokens,
        ),
        (
            "ParallelConfig",
            "tensor_parallel_size",
            c.tensor_parallel_size,
        ),
        (
            "ParallelConfig",
            "pipeline_parallel_size",
            c.pipeline_parallel_size,
        ),
        ("ParallelConfig", "data_parallel_size", c.data_parallel_size),
    ] {
        if v == 0 {
            return Err(below_one(config, field, v));
        }
    }
    Ok(())
}

/// Invalid combinations of arguments.
pub fn check(model: &ModelShape, c: &VllmConfig, max_len: u32) -> Result<(), BootError> {
    if !(c.gpu_memory_utilization > 0.0 && c.gpu_memory_utilization <= 1.0) {
        return Err(value_error(format!(
            "GPU memory utilization must be within (0, 1]. Got {}.",
            c.gpu_memory_utilization
        )));
    }
    check_common(model, c)?;
    check_scheduler(c, max_len)
}

/// What every framework refuses: zero counts, a tensor-parallel size that does not divide
/// the attention heads, an empty KV block.
pub fn check_common(model: &ModelShape, c: &VllmConfig) -> Result<(), BootError> {
    check_counts(c)?;
    let tp = c.tensor_parallel_size.max(1);
    if !model.num_heads.is_multiple_of(tp) {
        return Err(value_error(format!(
            "Total number of attention heads ({}) must be divisible by tensor parallel size ({}).",
            model.num_heads, tp
        )));
    }
    if c.block_size == 0 {
        return Err(value_error(
            "block_size must be a positive integer, got 0.".into(),
        ));
    }
    Ok(())
}

fn check_scheduler(c: &VllmConfig, max_len: u32) -> Result<(), BootError> {
    let (b, s) = (c.max_num_batched_tokens, c.max_num_seqs);
    if b < max_len && !c.enable_chunked_prefill {
        return Err(value_error(format!(
            "max_num_batched_tokens ({b}) is smaller than max_model_len ({max_len}). This \
             effectively limits the maximum sequence length to max_num_batched_tokens and \
             makes vLLM reject longer sequences. Please increase max_num_batched_tokens or \
             decrease max_model_len."
        )));
    }
    if b < s {
        return Err(value_error(format!(
            "max_num_batched_tokens ({b}) must be greater than or equal to max_num_seqs ({s})."
        )));
    }
    Ok(())
}
