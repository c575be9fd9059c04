//! The `vllm serve` flag table: every flag forge knows, its argparse shape, the
//! [`VllmArgs`](crate::engine::vllm::VllmArgs) field it sets (if any) and the vLLM
//! versions it exists in.
//!
//! Shapes follow vLLM's `EngineArgs.add_cli_args` / `make_arg_parser`: config booleans are
//! `BooleanOptionalAction` (`--x` / `--no-x`), `Literal` fields are choices (sorted, as
//! vLLM sorts them), `int | None` fields go through vLLM's `optional_type` (whose error
//! text differs from plain `int`), and `max_model_len` / `max_num_batched_tokens` accept
//! human-readable suffixes (`8k`, `1K`).

use std::fmt;

/// A vLLM release (`major.minor.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// Build a version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// vLLM 0.10.1: the older surface forge still renders for (`--swap-space`,
    /// `--disable-log-requests`, `-O` = `--compilation-config`).
    pub const V0_10: Version = Version::new(0, 10, 1);
    /// vLLM 0.33.0: the current surface.
    pub const V0_33: Version = Version::new(0, 33, 0);
    /// The version forge assumes when none is detected.
    pub const CURRENT: Version = Version::V0_33;

    /// Parse `0.10.1`, `0.33`, `v0.33.0` (a missing patch is 0; suffixes like
    /// `.post1` or `+cu128` are ignored).
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim().trim_start_matches('v');
        let core = t.split(['+', '-']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default();
        Some(Version::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

const V0_0: Version = Version::new(0, 0, 0);
const V0_11: Version = Version::new(0, 11, 0);
const V0_12: Version = Version::new(0, 12, 0);
/// `--attention-backend` (`AttentionConfig`) arrived in 0.13.0; before it vLLM read the
/// backend from `VLLM_ATTENTION_BACKEND` (release sources, `vllm/engine/arg_utils.py`).
const V0_13: Version = Version::new(0, 13, 0);
const V0_20: Version = Version::new(0, 20, 0);
const V0_30: Version = Version::new(0, 30, 0);

/// How a value is converted, which decides the wording of a conversion error (argparse
/// names the type function: `invalid int value: 'x'`; vLLM's `optional_type` raises
/// `Value x cannot be converted to <class 'int'>.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// Python `int` / `float`.
    Plain,
    /// vLLM's `human_readable_int` (`8k`, `1K`, `25.6k`).
    HumanReadable,
    /// vLLM's `optional_type(...)` (`None` / empty string means unset).
    Optional,
}

/// The argparse shape of a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// One integer.
    Int(Conv),
    /// One float.
    Float(Conv),
    /// One string.
    Str,
    /// One string out of a fixed list.
    Choice(&'static [&'static str]),
    /// One integer out of a fixed list.
    IntChoice(&'static [i64]),
    /// `action="store_true"`.
    StoreTrue,
    /// `argparse.BooleanOptionalAction`: `--x` and `--no-x`.
    BoolOpt,
    /// A JSON value (dict flags also take `--flag.key value`).
    Json,
    /// `nargs="+"` strings.
    StrList,
    /// `nargs="+"` integers.
    IntList(Conv),
}

impl Kind {
    /// True when the flag consumes no value.
    pub fn is_switch(self) -> bool {
        matches!(self, Kind::StoreTrue | Kind::BoolOpt)
    }
}

/// A server-side option forge's simulator honours that is not part of
/// [`VllmArgs`](crate::engine::vllm::VllmArgs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerField {
    /// `--api-key` (never logged).
    ApiKey,
    /// `--enable-prompt-tokens-details`.
    PromptTokensDetails,
    /// `--enable-force-include-usage`.
    ForceIncludeUsage,
    /// `--disable-log-stats`.
    DisableLogStats,
    /// `--enable-log-requests`.
    EnableLogRequests,
    /// `--disable-uvicorn-access-log`.
    DisableAccessLog,
    /// `--profiler-config` (JSON): enables `/start_profile` and `/stop_profile`.
    ProfilerConfig,
}

/// Where a parsed value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `--served-model-name` (all names are kept in the server options).
    ServedModelName,
    /// `--host`.
    Host,
    /// `--port`.
    Port,
    /// `--max-num-seqs`.
    MaxNumSeqs,
    /// `--max-num-batched-tokens`.
    MaxNumBatchedTokens,
    /// `--enable-prefix-caching`.
    EnablePrefixCaching,
    /// `--enable-chunked-prefill`.
    EnableChunkedPrefill,
    /// `--gpu-memory-utilization`.
    GpuMemoryUtilization,
    /// `--block-size`.
    BlockSize,
    /// `--kv-cache-dtype`.
    KvCacheDtype,
    /// `--quantization`.
    Quantization,
    /// `--dtype`.
    Dtype,
    /// `--max-model-len`.
    MaxModelLen,
    /// `--tensor-parallel-size`.
    TensorParallelSize,
    /// `--pipeline-parallel-size`.
    PipelineParallelSize,
    /// `--data-parallel-size`.
    DataParallelSize,
    /// `--enforce-eager`.
    EnforceEager,
    /// `--optimization-level` (`-O0`..`-O3`).
    OptimizationLevel,
    /// `--cudagraph-capture-sizes` (`--cuda-graph-sizes` before 0.11).
    CudagraphCaptureSizes,
    /// `--max-cudagraph-capture-size`.
    MaxCudagraphCaptureSize,
    /// `--performance-mode`.
    PerformanceMode,
    /// `--async-scheduling`.
    AsyncScheduling,
    /// `--long-prefill-token-threshold`.
    LongPrefillTokenThreshold,
    /// `--scheduling-policy`.
    SchedulingPolicy,
    /// `--speculative-config`.
    SpeculativeConfig,
    /// `--attention-backend`.
    AttentionBackend,
    /// `--seed`.
    Seed,
    /// `--compilation-config`: its level and CUDA-graph keys land in `VllmArgs`.
    CompilationConfig,
    /// A server option the simulator honours.
    Server(ServerField),
    /// Accepted (as vLLM accepts it) and otherwise ignored by forge.
    Ignored,
}

/// One flag of `vllm serve`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flag {
    /// Long option, e.g. `--max-num-seqs`.
    pub long: &'static str,
    /// Aliases, e.g. `-tp`, `--device-memory-utilization`.
    pub short: &'static [&'static str],
    /// Argparse shape.
    pub kind: Kind,
    /// Where the value goes.
    pub target: Target,
    /// First version that has the flag.
    pub since: Version,
    /// First version that no longer has it (`None`: still present).
    pub until: Option<Version>,
    /// Help section (vLLM's config group).
    pub group: &'static str,
    /// One-line help.
    pub help: &'static str,
}

impl Flag {
    /// True when the flag exists in `version`.
    pub fn exists_in(&self, version: Version) -> bool {
        self.since <= version && self.until.is_none_or(|u| version < u)
    }

    /// Argparse's name for the flag in error messages: every listed option string joined
    /// by `/` (`--tensor-parallel-size/-tp`, `--enable-prefix-caching/--disable-prefix-caching`).
    pub fn display_name(&self, version: Version) -> String {
        self.option_strings(version).join("/")
    }

    /// Every option string `vllm serve --help` lists for the flag in `version`, in
    /// argparse's order: `BooleanOptionalAction` gives `--x, --no-x, -a`; vLLM's
    /// `EnableDisableAction` (from [`ENABLE_DISABLE_SINCE`]) gives `--enable-x, -a,
    /// --disable-x`.
    pub fn option_strings(&self, version: Version) -> Vec<String> {
        let mut v = vec![self.long.to_string()];
        let shorts = self.short.iter().map(|s| s.to_string());
        match self.negation(version) {
            Some(neg) if enable_disable(self.long, version) => {
                v.extend(shorts);
                v.push(neg);
            }
            Some(neg) => {
                v.push(neg);
                v.extend(shorts);
            }
            None => v.extend(shorts),
        }
        v
    }

    /// Every option string vLLM `version` accepts for the flag: the listed ones plus the
    /// `--no-enable-x` / `--no-disable-x` spellings `EnableDisableAction` still accepts
    /// but hides from help.
    pub fn accepted_strings(&self, version: Version) -> Vec<String> {
        let mut v = self.option_strings(version);
        if self.kind == Kind::BoolOpt && enable_disable(self.long, version) {
            v.push(no_form(self.long));
        }
        v
    }

    /// The spelling that turns a boolean flag off in `version` (`None` for other kinds).
    pub fn negation(&self, version: Version) -> Option<String> {
        if self.kind != Kind::BoolOpt {
            return None;
        }
        Some(match inverse(self.long) {
            Some(inv) if version >= ENABLE_DISABLE_SINCE => inv,
            _ => no_form(self.long),
        })
    }

    /// True when `option` is one of the flag's negative spellings in `version`.
    pub fn is_negative(&self, option: &str, version: Version) -> bool {
        self.kind == Kind::BoolOpt
            && option != self.long
            && (self.negation(version).as_deref() == Some(option)
                || (option == no_form(self.long)
                    && self.accepted_strings(version).iter().any(|o| o == option)))
    }
}

/// First vLLM release known to pair `--enable-x` with `--disable-x` (vLLM's
/// `EnableDisableAction`, `--no-enable-x` still accepted but hidden). 0.10.2's help lists
/// `--no-enable-x`; 0.33.0's lists `--disable-x`. The release in between that switched is
/// not recorded here: for such a version the installed engine's help snapshot decides.
pub const ENABLE_DISABLE_SINCE: Version = Version::V0_33;

/// True when `long` is an `--enable-x`/`--disable-x` switch paired the new way in `version`.
fn enable_disable(long: &str, version: Version) -> bool {
    version >= ENABLE_DISABLE_SINCE && inverse(long).is_some()
}

/// `--enable-x` ↔ `--disable-x`.
fn inverse(long: &str) -> Option<String> {
    if let Some(x) = long.strip_prefix("--enable-") {
        return Some(format!("--disable-{x}"));
    }
    long.strip_prefix("--disable-")
        .map(|x| format!("--enable-{x}"))
}

/// `--x` → `--no-x` (argparse's `BooleanOptionalAction`).
fn no_form(long: &str) -> String {
    format!("--no-{}", long.trim_start_matches("--"))
}

const fn flag(
    long: &'static str,
    kind: Kind,
    target: Target,
    group: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        long,
        short: &[],
        kind,
        target,
        since: V0_0,
        until: None,
        group,
        help,
    }
}

impl Flag {
    const fn alias(self, short: &'static [&'static str]) -> Flag {
        Flag { short, ..self }
    }
    const fn since(self, since: Version) -> Flag {
        Flag { since, ..self }
    }
    const fn until(self, until: Version) -> Flag {
        Flag {
            until: Some(until),
            ..self
        }
    }
}

const INT: Kind = Kind::Int(Conv::Plain);
const OPT_INT: Kind = Kind::Int(Conv::Optional);
const HUMAN_INT: Kind = Kind::Int(Conv::HumanReadable);
const FLOAT: Kind = Kind::Float(Conv::Plain);

const FRONTEND: &str = "Frontend";
const MODEL: &str = "ModelConfig";
const LOAD: &str = "LoadConfig";
const PARALLEL: &str = "ParallelConfig";
const CACHE: &str = "CacheConfig";
const SCHEDULER: &str = "SchedulerConfig";
const COMPILATION: &str = "CompilationConfig";
const VLLM: &str = "VllmConfig";
const LORA: &str = "LoRAConfig";
const OTHER: &str = "options";

/// `--kv-cache-dtype` choices in 0.10 (`bf16` is not one in any version).
pub const KV_DTYPES_0_10: &[&str] = &["auto", "fp8", "fp8_e4m3", "fp8_e5m2"];
/// `--kv-cache-dtype` choices from 0.11.
pub const KV_DTYPES: &[&str] = &["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2"];
/// `--quantization` choices in 0.10 (`None` is vLLM's `optional_type` sentinel).
pub const QUANT_0_10: &[&str] = &[
    "aqlm",
    "awq",
    "awq_marlin",
    "bitblas",
    "bitsandbytes",
    "compressed-tensors",
    "experts_int8",
    "fbgemm_fp8",
    "fp8",
    "gguf",
    "gptq",
    "gptq_bitblas",
    "gptq_marlin",
    "gptq_marlin_24",
    "marlin",
    "modelopt",
    "modelopt_fp4",
    "moe_wna16",
    "mxfp4",
    "ptpc_fp8",
    "quark",
    "torchao",
    "None",
];
/// `--quantization` choices from 0.20 (gguf and bitsandbytes removed).
pub const QUANT: &[&str] = &[
    "awq",
    "awq_marlin",
    "bitblas",
    "compressed-tensors",
    "experts_int8",
    "fbgemm_fp8",
    "fp8",
    "gptq",
    "gptq_bitblas",
    "gptq_marlin",
    "inc",
    "modelopt",
    "modelopt_fp4",
    "moe_wna16",
    "mxfp4",
    "ptpc_fp8",
    "quark",
    "torchao",
    "None",
];
/// `--dtype` choices.
pub const DTYPES: &[&str] = &["auto", "bfloat16", "float", "float16", "float32", "half"];
/// `--block-size` choices before 0.11.
pub const BLOCK_SIZES_0_10: &[i64] = &[1, 8, 16, 32, 64, 128];
/// `--block-size` choices from 0.11.
pub const BLOCK_SIZES: &[i64] = &[1, 8, 16, 32, 64, 128, 256];
/// `-O` levels.
pub const OPT_LEVELS: &[i64] = &[0, 1, 2, 3];
/// `--performance-mode` choices.
pub const PERF_MODES: &[&str] = &["balanced", "interactivity", "throughput"];
/// `--scheduling-policy` choices.
pub const POLICIES: &[&str] = &["fcfs", "priority"];
const LOG_LEVELS: &[&str] = &["critical", "debug", "error", "info", "trace", "warning"];
const TOKENIZER_MODES_0_10: &[&str] = &["auto", "custom", "mistral", "slow"];
const TOKENIZER_MODES: &[&str] = &[
    "alpamayo2_super",
    "auto",
    "cohere",
    "deepseek_v32",
    "deepseek_v4",
    "hf",
    "inkling",
    "kimi_k3",
    "mistral",
];
const EXECUTORS: &[&str] = &["external_launcher", "mp", "ray", "uni"];
const CONTENT_FORMATS: &[&str] = &["auto", "openai", "string"];

use Target as T;

/// The table, in the order `render` emits flags.
#[rustfmt::skip]
pub static FLAGS: &[Flag] = &[
    // Frontend.
    flag("--host", Kind::Str, T::Host, FRONTEND, "Host name."),
    flag("--port", INT, T::Port, FRONTEND, "Port number."),
    flag("--uvicorn-log-level", Kind::Choice(LOG_LEVELS), T::Ignored, FRONTEND, "Log level for uvicorn."),
    flag("--disable-uvicorn-access-log", Kind::BoolOpt, T::Server(ServerField::DisableAccessLog), FRONTEND, "Disable uvicorn access log."),
    flag("--allowed-origins", Kind::Json, T::Ignored, FRONTEND, "Allowed origins."),
    flag("--api-key", Kind::StrList, T::Server(ServerField::ApiKey), FRONTEND, "If provided, the server will require one of these keys to be presented in the header."),
    flag("--chat-template", Kind::Str, T::Ignored, FRONTEND, "The file path to the chat template, or the template in single-line form."),
    flag("--chat-template-content-format", Kind::Choice(CONTENT_FORMATS), T::Ignored, FRONTEND, "The format to render message content within a chat template."),
    flag("--response-role", Kind::Str, T::Ignored, FRONTEND, "The role name to return if `request.add_generation_prompt=true`."),
    flag("--root-path", Kind::Str, T::Ignored, FRONTEND, "FastAPI root_path when app is behind a path based routing proxy."),
    flag("--ssl-keyfile", Kind::Str, T::Ignored, FRONTEND, "The file path to the SSL key file."),
    flag("--ssl-certfile", Kind::Str, T::Ignored, FRONTEND, "The file path to the SSL cert file."),
    flag("--enable-auto-tool-choice", Kind::BoolOpt, T::Ignored, FRONTEND, "Enable auto tool choice for supported models."),
    flag("--tool-call-parser", Kind::Str, T::Ignored, FRONTEND, "Select the tool call parser depending on the model."),
    flag("--disable-fastapi-docs", Kind::BoolOpt, T::Ignored, FRONTEND, "Disable FastAPI's OpenAPI schema, Swagger UI, and ReDoc endpoint."),
    flag("--enable-prompt-tokens-details", Kind::BoolOpt, T::Server(ServerField::PromptTokensDetails), FRONTEND, "If set to True, enable prompt_tokens_details in usage."),
    flag("--enable-force-include-usage", Kind::BoolOpt, T::Server(ServerField::ForceIncludeUsage), FRONTEND, "If set to True, including usage on every request."),
    flag("--enable-request-id-headers", Kind::BoolOpt, T::Ignored, FRONTEND, "If specified, API server will add X-Request-Id header to responses."),
    flag("--max-log-len", OPT_INT, T::Ignored, FRONTEND, "Max number of prompt characters or prompt ID numbers being printed in log."),
    flag("--api-server-count", INT, T::Ignored, FRONTEND, "How many API server processes to run.").alias(&["-asc"]),
    flag("--lora-modules", Kind::StrList, T::Ignored, FRONTEND, "LoRA modules configurations."),
    // 0.10's deprecated `--disable-log-requests` (its own switch, `--no-disable-log-requests`
    // too); from 0.33 the same spelling is the negation of `--enable-log-requests`.
    flag("--disable-log-requests", Kind::BoolOpt, T::Ignored, FRONTEND, "[DEPRECATED] Disable logging requests.").until(V0_20),
    flag("--enable-log-requests", Kind::BoolOpt, T::Server(ServerField::EnableLogRequests), FRONTEND, "Enable logging requests."),
    // ModelConfig.
    flag("--tokenizer", Kind::Str, T::Ignored, MODEL, "Name or path of the Hugging Face tokenizer to use."),
    flag("--tokenizer-mode", Kind::Choice(TOKENIZER_MODES_0_10), T::Ignored, MODEL, "Tokenizer mode.").until(Version::V0_33),
    flag("--tokenizer-mode", Kind::Choice(TOKENIZER_MODES), T::Ignored, MODEL, "Tokenizer mode.").since(Version::V0_33),
    flag("--trust-remote-code", Kind::BoolOpt, T::Ignored, MODEL, "Trust remote code (e.g., from HuggingFace) when downloading the model and tokenizer."),
    flag("--dtype", Kind::Choice(DTYPES), T::Dtype, MODEL, "Data type for model weights and activations."),
    flag("--seed", OPT_INT, T::Seed, MODEL, "Random seed for reproducibility."),
    flag("--revision", Kind::Str, T::Ignored, MODEL, "The specific model version to use."),
    flag("--code-revision", Kind::Str, T::Ignored, MODEL, "The specific revision to use for the model code on the Hugging Face Hub."),
    flag("--tokenizer-revision", Kind::Str, T::Ignored, MODEL, "The specific revision to use for the tokenizer on the Hugging Face Hub."),
    flag("--max-model-len", HUMAN_INT, T::MaxModelLen, MODEL, "Model context length (prompt and output)."),
    flag("--quantization", Kind::Choice(QUANT_0_10), T::Quantization, MODEL, "Method used to quantize the weights.").alias(&["-q"]).until(V0_20),
    flag("--quantization", Kind::Choice(QUANT), T::Quantization, MODEL, "Method used to quantize the weights.").alias(&["-q"]).since(V0_20),
    flag("--enforce-eager", Kind::BoolOpt, T::EnforceEager, MODEL, "Whether to always use eager-mode PyTorch."),
    flag("--max-logprobs", INT, T::Ignored, MODEL, "Maximum number of log probabilities to return."),
    flag("--disable-sliding-window", Kind::BoolOpt, T::Ignored, MODEL, "Whether to disable sliding window."),
    flag("--served-model-name", Kind::StrList, T::ServedModelName, MODEL, "The model name(s) used in the API."),
    flag("--hf-overrides", Kind::Json, T::Ignored, MODEL, "Arguments to be forwarded to the Hugging Face config."),
    flag("--generation-config", Kind::Str, T::Ignored, MODEL, "The folder path to the generation config."),
    flag("--override-generation-config", Kind::Json, T::Ignored, MODEL, "Overrides or sets generation config."),
    flag("--enable-sleep-mode", Kind::BoolOpt, T::Ignored, MODEL, "Enable sleep mode for the engine."),
    // LoadConfig.
    flag("--load-format", Kind::Str, T::Ignored, LOAD, "The format of the model weights to load."),
    flag("--download-dir", Kind::Str, T::Ignored, LOAD, "Directory to download and load the weights."),
    // ParallelConfig.
    flag("--distributed-executor-backend", Kind::Choice(EXECUTORS), T::Ignored, PARALLEL, "Backend to use for distributed model workers."),
    flag("--pipeline-parallel-size", INT, T::PipelineParallelSize, PARALLEL, "Number of pipeline parallel groups.").alias(&["-pp"]),
    flag("--tensor-parallel-size", INT, T::TensorParallelSize, PARALLEL, "Number of tensor parallel groups.").alias(&["-tp"]),
    flag("--data-parallel-size", INT, T::DataParallelSize, PARALLEL, "Number of data parallel groups.").alias(&["-dp"]),
    flag("--enable-expert-parallel", Kind::BoolOpt, T::Ignored, PARALLEL, "Use expert parallelism instead of tensor parallelism for MoE layers.").until(Version::V0_33),
    flag("--enable-expert-parallel", Kind::BoolOpt, T::Ignored, PARALLEL, "Use expert parallelism instead of tensor parallelism for MoE layers.").alias(&["-ep"]).since(Version::V0_33),
    flag("--max-parallel-loading-workers", OPT_INT, T::Ignored, PARALLEL, "Maximum number of parallel loading workers."),
    flag("--disable-custom-all-reduce", Kind::BoolOpt, T::Ignored, PARALLEL, "Disable the custom all-reduce kernel and fall back to NCCL."),
    // CacheConfig.
    flag("--block-size", Kind::IntChoice(BLOCK_SIZES_0_10), T::BlockSize, CACHE, "Size of a contiguous cache block in number of tokens.").until(V0_11),
    flag("--block-size", Kind::IntChoice(BLOCK_SIZES), T::BlockSize, CACHE, "Size of a contiguous cache block in number of tokens.").since(V0_11),
    flag("--gpu-memory-utilization", FLOAT, T::GpuMemoryUtilization, CACHE, "The fraction of GPU memory to be used for the model executor.").until(Version::V0_33),
    flag("--gpu-memory-utilization", FLOAT, T::GpuMemoryUtilization, CACHE, "The fraction of GPU memory to be used for the model executor.").alias(&["--device-memory-utilization"]).since(Version::V0_33),
    flag("--kv-cache-memory-bytes", HUMAN_INT, T::Ignored, CACHE, "Size of KV Cache per GPU in bytes.").since(V0_11),
    flag("--swap-space", FLOAT, T::Ignored, CACHE, "Size of the CPU swap space per GPU (in GiB).").until(V0_20),
    flag("--kv-cache-dtype", Kind::Choice(KV_DTYPES_0_10), T::KvCacheDtype, CACHE, "Data type for kv cache storage.").until(V0_11),
    flag("--kv-cache-dtype", Kind::Choice(KV_DTYPES), T::KvCacheDtype, CACHE, "Data type for kv cache storage.").since(V0_11),
    flag("--num-gpu-blocks-override", OPT_INT, T::Ignored, CACHE, "Number of GPU blocks to use (for testing preemption)."),
    flag("--enable-prefix-caching", Kind::BoolOpt, T::EnablePrefixCaching, CACHE, "Whether to enable prefix caching."),
    flag("--cpu-offload-gb", FLOAT, T::Ignored, CACHE, "The space in GiB to offload to CPU, per GPU."),
    // LoRAConfig.
    flag("--enable-lora", Kind::BoolOpt, T::Ignored, LORA, "If True, enable handling of LoRA adapters."),
    flag("--max-loras", INT, T::Ignored, LORA, "Max number of LoRAs in a single batch."),
    flag("--max-lora-rank", INT, T::Ignored, LORA, "Max LoRA rank."),
    // SchedulerConfig.
    flag("--max-num-batched-tokens", HUMAN_INT, T::MaxNumBatchedTokens, SCHEDULER, "Maximum number of tokens to be processed in a single iteration."),
    flag("--max-num-seqs", INT, T::MaxNumSeqs, SCHEDULER, "Maximum number of sequences to be processed in a single iteration."),
    flag("--max-num-partial-prefills", INT, T::Ignored, SCHEDULER, "Maximum number of sequences that can be partially prefilled concurrently.").until(V0_20),
    flag("--max-long-partial-prefills", INT, T::Ignored, SCHEDULER, "Maximum number of long prompts prefilled concurrently.").until(V0_20),
    flag("--long-prefill-token-threshold", INT, T::LongPrefillTokenThreshold, SCHEDULER, "A request is considered long if the prompt is longer than this number of tokens."),
    flag("--scheduling-policy", Kind::Choice(POLICIES), T::SchedulingPolicy, SCHEDULER, "The scheduling policy to use."),
    flag("--enable-chunked-prefill", Kind::BoolOpt, T::EnableChunkedPrefill, SCHEDULER, "If True, prefill requests can be chunked based on the remaining max_num_batched_tokens."),
    flag("--async-scheduling", Kind::BoolOpt, T::AsyncScheduling, SCHEDULER, "If set to True, perform async scheduling."),
    flag("--performance-mode", Kind::Choice(PERF_MODES), T::PerformanceMode, SCHEDULER, "Trade per-user latency against aggregate throughput.").since(V0_30),
    // CompilationConfig.
    flag("--cuda-graph-sizes", Kind::IntList(Conv::Optional), T::CudagraphCaptureSizes, COMPILATION, "Cuda graph capture sizes.").until(V0_11),
    flag("--cudagraph-capture-sizes", Kind::IntList(Conv::Optional), T::CudagraphCaptureSizes, COMPILATION, "Sizes to capture cudagraph.").since(V0_11),
    flag("--max-cudagraph-capture-size", OPT_INT, T::MaxCudagraphCaptureSize, COMPILATION, "The maximum cudagraph capture size.").since(V0_11),
    flag("--attention-backend", Kind::Str, T::AttentionBackend, COMPILATION, "Attention backend to use (FLASH_ATTN, FLASHINFER, TRITON_ATTN, ...).").since(V0_13),
    // VllmConfig.
    flag("--optimization-level", Kind::IntChoice(OPT_LEVELS), T::OptimizationLevel, VLLM, "The optimization level (-O0 .. -O3).").since(V0_12),
    flag("--speculative-config", Kind::Json, T::SpeculativeConfig, VLLM, "Speculative decoding configuration.").until(V0_12),
    flag("--speculative-config", Kind::Json, T::SpeculativeConfig, VLLM, "Speculative decoding configuration.").alias(&["-sc"]).since(V0_12),
    flag("--kv-transfer-config", Kind::Json, T::Ignored, VLLM, "The configurations for distributed KV cache transfer."),
    flag("--compilation-config", Kind::Json, T::CompilationConfig, VLLM, "torch.compile and cudagraph capture configuration.").alias(&["-O"]).until(V0_12),
    flag("--compilation-config", Kind::Json, T::CompilationConfig, VLLM, "torch.compile and cudagraph capture configuration.").alias(&["-cc"]).since(V0_12),
    // Other.
    flag("--disable-log-stats", Kind::StoreTrue, T::Server(ServerField::DisableLogStats), OTHER, "Disable logging statistics."),
    flag("--profiler-config", Kind::Json, T::Server(ServerField::ProfilerConfig), OTHER, "Profiling configuration (torch or cuda profiler).").since(V0_13),
];

/// The flags that exist in `version`, in table order.
pub fn flags_for(version: Version) -> impl Iterator<Item = &'static Flag> {
    FLAGS.iter().filter(move |f| f.exists_in(version))
}

/// Find the flag an option string names in `version` (`--max-num-seqs`, `-tp`,
/// `--disable-prefix-caching`, and the hidden `--no-enable-prefix-caching`).
pub fn lookup(option: &str, version: Version) -> Option<&'static Flag> {
    flags_for(version).find(|f| {
        f.long == option
            || f.short.contains(&option)
            || (f.kind == Kind::BoolOpt && f.accepted_strings(version).iter().any(|o| o == option))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing_and_order() {
        assert_eq!(Version::parse("0.10.1"), Some(Version::V0_10));
        assert_eq!(Version::parse("v0.33"), Some(Version::V0_33));
        assert_eq!(
            Version::parse("0.10.1.post1+cu128"),
            Some(Version::new(0, 10, 1))
        );
        assert_eq!(Version::parse("x"), None);
        assert!(Version::V0_10 < Version::V0_33);
        assert_eq!(Version::V0_33.to_string(), "0.33.0");
    }

    #[test]
    fn each_target_has_one_flag_per_version() {
        for v in [Version::V0_10, Version::V0_33] {
            let mut seen = std::collections::HashSet::new();
            for f in flags_for(v) {
                assert!(seen.insert(f.long), "{} twice in {v}", f.long);
                if !matches!(f.target, Target::Ignored | Target::Server(_)) {
                    let n = flags_for(v).filter(|g| g.target == f.target).count();
                    assert_eq!(n, 1, "{:?} in {v}", f.target);
                }
            }
        }
    }

    #[test]
    fn removed_flags_exist_only_in_old_versions() {
        for name in ["--swap-space", "--max-num-partial-prefills"] {
            assert!(lookup(name, Version::V0_10).is_some(), "{name}");
            assert!(lookup(name, Version::V0_33).is_none(), "{name}");
        }
        assert!(lookup("--disable-chunked-prefill", Version::V0_10).is_none());
        assert!(lookup("--performance-mode", Version::V0_10).is_none());
        assert_eq!(
            lookup("-tp", Version::V0_33).unwrap().long,
            "--tensor-parallel-size"
        );
        assert_eq!(
            lookup("-O", Version::V0_10).unwrap().long,
            "--compilation-config"
        );
        assert_eq!(
            lookup("-cc", Version::V0_33).unwrap().long,
            "--compilation-config"
        );
        assert!(!KV_DTYPES.contains(&"bf16"));
    }

    #[test]
    fn negative_spellings_follow_the_version() {
        let v33 = Version::V0_33;
        let v10 = Version::V0_10;
        // 0.33 pairs --enable-x with --disable-x and still accepts the hidden --no-enable-x.
        for (neg, long) in [
            ("--disable-prefix-caching", "--enable-prefix-caching"),
            ("--no-enable-prefix-caching", "--enable-prefix-caching"),
            ("--disable-chunked-prefill", "--enable-chunked-prefill"),
            ("--disable-log-requests", "--enable-log-requests"),
            (
                "--enable-uvicorn-access-log",
                "--disable-uvicorn-access-log",
            ),
            ("--no-enforce-eager", "--enforce-eager"),
        ] {
            let f = lookup(neg, v33).unwrap();
            assert_eq!(f.long, long);
            assert!(f.is_negative(neg, v33), "{neg}");
        }
        let pc = lookup("--enable-prefix-caching", v33).unwrap();
        assert!(!pc.is_negative("--enable-prefix-caching", v33));
        assert_eq!(
            pc.negation(v33).as_deref(),
            Some("--disable-prefix-caching")
        );
        assert_eq!(
            pc.negation(v10).as_deref(),
            Some("--no-enable-prefix-caching")
        );
        // 0.10 knows only the --no- form; its --disable-log-requests is a switch of its own.
        assert!(lookup("--disable-prefix-caching", v10).is_none());
        let dlr = lookup("--disable-log-requests", v10).unwrap();
        assert_eq!(dlr.long, "--disable-log-requests");
        assert!(dlr.is_negative("--no-disable-log-requests", v10));
        let access = lookup("--disable-uvicorn-access-log", v33).unwrap();
        assert!(!access.is_negative("--disable-uvicorn-access-log", v33));
    }

    #[test]
    fn option_strings_are_unique_per_version() {
        for v in [Version::V0_10, Version::V0_33] {
            let mut seen = std::collections::HashSet::new();
            for f in flags_for(v) {
                for o in f.accepted_strings(v) {
                    assert!(seen.insert(o.clone()), "{o} twice in {v}");
                }
            }
        }
    }

    #[test]
    fn display_names_join_every_option_string() {
        let tp = lookup("-tp", Version::V0_33).unwrap();
        assert_eq!(
            tp.display_name(Version::V0_33),
            "--tensor-parallel-size/-tp"
        );
        let pc = lookup("--enable-prefix-caching", Version::V0_33).unwrap();
        assert_eq!(
            pc.display_name(Version::V0_33),
            "--enable-prefix-caching/--disable-prefix-caching"
        );
        assert_eq!(
            pc.display_name(Version::V0_10),
            "--enable-prefix-caching/--no-enable-prefix-caching"
        );
        let ep = lookup("-ep", Version::V0_33).unwrap();
        assert_eq!(
            ep.display_name(Version::V0_33),
            "--enable-expert-parallel/-ep/--disable-expert-parallel"
        );
    }
}
