//! STUB: vLLM flag table, argparse-compatible parsing and rendering (sim-server work).
