//! The tuning layers (serving flags, quantization, kernels), in escalation order: which
//! section of a recipe a knob belongs to, and the order `forge tune` works through them.

use serde::{Deserialize, Serialize};

/// Tuning layers, in escalation order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Layer 1: serving flags.
    Config,
    /// Layer 2: quantization.
    Quant,
    /// Layer 3: kernel choices.
    Kernel,
}

impl Layer {
    /// 1, 2 or 3 (the original's numbering, used by `--start-layer`).
    pub fn number(self) -> u8 {
        match self {
            Layer::Config => 1,
            Layer::Quant => 2,
            Layer::Kernel => 3,
        }
    }

    /// From 1, 2 or 3.
    pub fn from_number(n: u8) -> Option<Layer> {
        match n {
            1 => Some(Layer::Config),
            2 => Some(Layer::Quant),
            3 => Some(Layer::Kernel),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Config => "config",
            Layer::Quant => "quant",
            Layer::Kernel => "kernel",
        }
    }
}
