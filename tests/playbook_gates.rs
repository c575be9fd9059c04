//! `forge playbook gates`: the quantization hardware gates as users read them — the table
//! with its sources, and what each scheme does on one GPU (FP8 on an A100 runs weight-only
//! in vLLM and not at all in TensorRT-LLM; NVFP4 on an H100 is a fallback or refused).

mod common;

use common::bin::{forge, run};

fn gates(args: &[&str]) -> String {
    let o = run(forge(&["playbook", "gates"]).args(args));
    assert_eq!(o.code, 0, "{}", o.stderr);
    o.stdout
}

#[test]
fn the_vllm_table_with_its_sources() {
    insta::assert_snapshot!(gates(&[]));
}

#[test]
fn an_a100_under_vllm_and_an_h100_under_tensorrt_llm() {
    let a100 = gates(&["--gpu", "A100-80GB"]);
    assert!(
        a100.contains("fallback: FP8 W8A8 on vLLM needs SM 8.9"),
        "{a100}"
    );
    insta::assert_snapshot!("a100_vllm", a100);
    let h100 = gates(&["--engine", "trtllm", "--gpu", "H100"]);
    assert!(
        h100.contains("refused: NVFP4 W4A4 on TensorRT-LLM needs SM 10.0"),
        "{h100}"
    );
    insta::assert_snapshot!("h100_trtllm", h100);
}
