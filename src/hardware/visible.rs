//! `CUDA_VISIBLE_DEVICES`, `HIP_VISIBLE_DEVICES` and `ROCR_VISIBLE_DEVICES`: which of the
//! detected GPUs an engine started from this environment will see, in which order.
//!
//! Semantics follow CUDA's documentation: unset means all; an empty value means none; the
//! list holds indices or `GPU-<uuid>` prefixes; at the first entry that names no GPU
//! (`-1`, an out-of-range index, an unknown or ambiguous UUID) the list ends, so `-1`
//! alone hides every GPU. The first listed GPU becomes device 0, which is the GPU a
//! recipe is tuned for. For AMD, ROCR's list applies first and HIP's indices then refer to
//! what ROCR left, as in the ROCm runtime.

use super::DetectedGpu;

/// The visibility variables, read once from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisibleEnv {
    /// `CUDA_VISIBLE_DEVICES`.
    pub cuda: Option<String>,
    /// `HIP_VISIBLE_DEVICES`.
    pub hip: Option<String>,
    /// `ROCR_VISIBLE_DEVICES`.
    pub rocr: Option<String>,
    /// `CUDA_DEVICE_ORDER` (indices follow PCI order only with `PCI_BUS_ID`).
    pub cuda_device_order: Option<String>,
}

impl VisibleEnv {
    /// Read the variables from this process's environment.
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok();
        VisibleEnv {
            cuda: get("CUDA_VISIBLE_DEVICES"),
            hip: get("HIP_VISIBLE_DEVICES"),
            rocr: get("ROCR_VISIBLE_DEVICES"),
            cuda_device_order: get("CUDA_DEVICE_ORDER"),
        }
    }
}

/// The GPUs left visible by one variable, plus warnings about entries that were dropped.
pub fn apply(
    gpus: Vec<DetectedGpu>,
    var: &str,
    value: Option<&str>,
) -> (Vec<DetectedGpu>, Vec<String>) {
    let Some(value) = value else {
        return (gpus, Vec::new());
    };
    if value.trim().is_empty() {
        let w = format!("{var} is set but empty: no GPU is visible");
        return (Vec::new(), vec![w]);
    }
    let mut picked: Vec<usize> = Vec::new();
    let mut warnings = Vec::new();
    for entry in value.split(',').map(str::trim) {
        match select(&gpus, entry) {
            Ok(i) if picked.contains(&i) => {
                warnings.push(format!("{var}={value}: `{entry}` is listed twice; ignored"));
            }
            Ok(i) => picked.push(i),
            Err(why) => {
                warnings.push(format!(
                    "{var}={value}: `{entry}` {why}; it and every entry after it are ignored"
                ));
                break;
            }
        }
    }
    if picked.is_empty() {
        warnings.push(format!("{var}={value} leaves no GPU visible"));
    }
    let visible = picked.iter().map(|&i| gpus[i].clone()).collect();
    (visible, warnings)
}

/// Position in `gpus` that `entry` names, or why it names none.
fn select(gpus: &[DetectedGpu], entry: &str) -> Result<usize, String> {
    if let Ok(i) = entry.parse::<usize>() {
        return if i < gpus.len() {
            Ok(i)
        } else {
            Err(format!("is out of range ({} GPUs)", gpus.len()))
        };
    }
    let lower = entry.to_ascii_lowercase();
    if lower.starts_with("mig-") {
        return Err("is a MIG instance, which forge cannot tune on".into());
    }
    if !lower.starts_with("gpu-") {
        return Err("is not a GPU index or GPU-<uuid>".into());
    }
    let hits: Vec<usize> = gpus
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            g.uuid
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with(&lower))
        })
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err("matches no GPU's UUID".into()),
        _ => Err("matches more than one GPU's UUID".into()),
    }
}

/// Apply the NVIDIA variable.
pub fn apply_cuda(gpus: Vec<DetectedGpu>, env: &VisibleEnv) -> (Vec<DetectedGpu>, Vec<String>) {
    apply(gpus, "CUDA_VISIBLE_DEVICES", env.cuda.as_deref())
}

/// Apply the AMD variables: ROCR first, then HIP (or, when HIP is unset, CUDA's, which HIP
/// also honours) on what ROCR left.
pub fn apply_amd(gpus: Vec<DetectedGpu>, env: &VisibleEnv) -> (Vec<DetectedGpu>, Vec<String>) {
    let (gpus, mut w) = apply(gpus, "ROCR_VISIBLE_DEVICES", env.rocr.as_deref());
    let (var, value) = match (&env.hip, &env.cuda) {
        (Some(h), _) => ("HIP_VISIBLE_DEVICES", Some(h.as_str())),
        (None, Some(c)) => ("CUDA_VISIBLE_DEVICES", Some(c.as_str())),
        (None, None) => ("HIP_VISIBLE_DEVICES", None),
    };
    let (gpus, w2) = apply(gpus, var, value);
    w.extend(w2);
    (gpus, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::gpus::Vendor;

    fn gpu(i: u32, uuid: &str) -> DetectedGpu {
        DetectedGpu {
            index: i,
            vendor: Vendor::Nvidia,
            name: format!("G{i}"),
            memory_mib: None,
            compute_capability: None,
            gfx: None,
            driver_version: None,
            uuid: Some(uuid.into()),
            spec: None,
        }
    }

    fn four() -> Vec<DetectedGpu> {
        vec![
            gpu(0, "GPU-e04968e9-3302-841c-b00f-f388d7a8f56f"),
            gpu(1, "GPU-fd26179c-de1f-3f6f-f298-383b36269b35"),
            gpu(2, "GPU-60619e5a-d4b4-3305-17ff-190a5474ada5"),
            gpu(3, "GPU-ca841b49-69a5-890b-d980-1bd4f98161d8"),
        ]
    }

    fn idx(v: Option<&str>) -> (Vec<u32>, usize) {
        let (g, w) = apply(four(), "CUDA_VISIBLE_DEVICES", v);
        (g.iter().map(|g| g.index).collect(), w.len())
    }

    #[test]
    fn unset_means_all_and_order_follows_the_list() {
        assert_eq!(idx(None), (vec![0, 1, 2, 3], 0));
        assert_eq!(idx(Some("2,0")), (vec![2, 0], 0));
        assert_eq!(idx(Some(" 3 , 1 ")), (vec![3, 1], 0));
    }

    #[test]
    fn empty_and_minus_one_mean_none() {
        assert_eq!(idx(Some("")), (vec![], 1));
        assert_eq!(idx(Some("-1")), (vec![], 2));
        let (_, w) = apply(four(), "CUDA_VISIBLE_DEVICES", Some("-1"));
        assert_eq!(
            w[0],
            "CUDA_VISIBLE_DEVICES=-1: `-1` is not a GPU index or GPU-<uuid>; it and every entry after it are ignored"
        );
    }

    #[test]
    fn the_list_ends_at_the_first_invalid_entry() {
        assert_eq!(idx(Some("1,7,2")), (vec![1], 1));
        assert_eq!(idx(Some("0,x,1")), (vec![0], 1));
        assert_eq!(idx(Some("1,1,2")), (vec![1, 2], 1));
    }

    #[test]
    fn uuids_and_unique_prefixes() {
        assert_eq!(
            idx(Some("GPU-60619e5a-d4b4-3305-17ff-190a5474ada5,0")),
            (vec![2, 0], 0)
        );
        assert_eq!(idx(Some("gpu-ca84")), (vec![3], 0));
        assert_eq!(idx(Some("GPU-")), (vec![], 2));
        assert_eq!(idx(Some("GPU-deadbeef")), (vec![], 2));
        assert_eq!(idx(Some("MIG-GPU-e04968e9/1/0")), (vec![], 2));
    }

    #[test]
    fn amd_rocr_then_hip_on_what_is_left() {
        let env = VisibleEnv {
            rocr: Some("1,2,3".into()),
            hip: Some("2".into()),
            ..Default::default()
        };
        let (g, w) = apply_amd(four(), &env);
        assert_eq!(
            (g.iter().map(|g| g.index).collect::<Vec<_>>(), w.len()),
            (vec![3], 0)
        );
        let env = VisibleEnv {
            cuda: Some("0".into()),
            ..Default::default()
        };
        let (g, _) = apply_amd(four(), &env);
        assert_eq!(g[0].index, 0);
        assert_eq!(g.len(), 1);
    }
}
