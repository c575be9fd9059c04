//! Accuracy: does the candidate still answer like the model should?
//!
//! Two measures, relative to the baseline (1.0 = as good as the engine's defaults):
//! - **task accuracy** where the workload gives `expected_output`: the reference appears in
//!   the answer (after normalisation), else token F1 against it;
//! - **agreement** elsewhere: how many of the first 32 tokens of each answer match the
//!   baseline's answer to the same prompt (greedy decoding with pinned lengths makes equal
//!   configurations answer identically; quantization and broken kernels do not).
//!
//! Task accuracy is used when the workload has references and the baseline scores above
//! zero on them; otherwise agreement. The accuracy floor applies to the result.

use crate::record::AnswerAgreement;
use crate::tokenize;

/// Tokens compared per answer for agreement.
pub const AGREEMENT_TOKENS: usize = 32;

fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Token F1 between an answer and a reference (bag of normalised words).
pub fn token_f1(answer: &str, reference: &str) -> f64 {
    let a: Vec<String> = normalize(answer)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let r: Vec<String> = normalize(reference)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    if a.is_empty() || r.is_empty() {
        return if a.is_empty() && r.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut pool = r.clone();
    let mut common = 0usize;
    for w in &a {
        if let Some(i) = pool.iter().position(|x| x == w) {
            pool.swap_remove(i);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / a.len() as f64;
    let rc = common as f64 / r.len() as f64;
    2.0 * p * rc / (p + rc)
}

/// Task score of one answer: 1 when the normalised reference is contained in it.
pub fn task_score(answer: &str, reference: &str) -> f64 {
    let (a, r) = (normalize(answer), normalize(reference));
    if !r.is_empty() && a.contains(&r) {
        1.0
    } else {
        token_f1(answer, reference)
    }
}

/// Share of the first [`AGREEMENT_TOKENS`] tokens before `answer` and `reference` first
/// differ (1 when both are empty).
pub fn prefix_agreement(answer: &str, reference: &str) -> f64 {
    let a = tokenize::tokenize(answer);
    let r = tokenize::tokenize(reference);
    let n = a.len().max(r.len()).min(AGREEMENT_TOKENS);
    if n == 0 {
        return 1.0;
    }
    let same = a.iter().zip(&r).take(n).take_while(|(x, y)| x == y).count();
    same as f64 / n as f64
}

/// Fraction of the first [`AGREEMENT_TOKENS`] tokens equal, position by position.
pub fn agreement(answer: &str, reference: &str) -> f64 {
    let a = tokenize::tokenize(answer);
    let r = tokenize::tokenize(reference);
    let n = a.len().max(r.len()).min(AGREEMENT_TOKENS);
    if n == 0 {
        return 1.0;
    }
    let same = a.iter().zip(&r).take(n).filter(|(x, y)| x == y).count();
    same as f64 / n as f64
}

/// References for a run: the workload's expected outputs and the baseline's answers.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct References {
    /// `expected_output` per request (None where absent).
    pub expected: Vec<Option<String>>,
    /// The baseline's answers, per request.
    pub baseline_answers: Vec<String>,
    /// The baseline's own mean task score (None when the workload has no references).
    pub baseline_task: Option<f64>,
    /// How well a second run of the baseline agreed with the first (1.0 for an engine whose
    /// greedy answers do not depend on batching; llama.cpp's do). Agreement is judged
    /// relative to this level, so the engine's own variation is not counted as a loss.
    #[serde(default)]
    pub self_agreement: Option<f64>,
}

impl References {
    /// Build from the workload's references and the baseline's answers.
    pub fn new(expected: Vec<Option<String>>, baseline_answers: Vec<String>) -> References {
        let mut r = References {
            expected,
            baseline_answers,
            baseline_task: None,
            self_agreement: None,
        };
        r.baseline_task = r.mean_task(&r.baseline_answers.clone());
        r
    }

    /// Record how a second run of the baseline agreed with the first.
    pub fn calibrate(&mut self, second_run: &[String]) {
        self.self_agreement = self.mean_agreement(second_run).filter(|a| *a > 0.0);
    }

    /// Mean agreement with the baseline's answers, over the requests the baseline answered
    /// (a request that failed in the baseline's run is no reference for anything).
    fn mean_agreement(&self, answers: &[String]) -> Option<f64> {
        let scores: Vec<f64> = self
            .baseline_answers
            .iter()
            .zip(answers)
            .filter(|(r, _)| !r.is_empty())
            .map(|(r, a)| agreement(a, r))
            .collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    }

    fn mean_task(&self, answers: &[String]) -> Option<f64> {
        let scores: Vec<f64> = self
            .expected
            .iter()
            .zip(answers)
            .filter_map(|(e, a)| e.as_ref().map(|e| task_score(a, e)))
            .collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    }

    /// Exact, token-prefix and free-text agreement of `answers` with the baseline's, over
    /// the requests the baseline answered.
    pub fn detail(&self, answers: &[String]) -> Option<AnswerAgreement> {
        let pairs: Vec<(&String, &String)> = self
            .baseline_answers
            .iter()
            .zip(answers)
            .filter(|(r, _)| !r.is_empty())
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let n = pairs.len() as f64;
        let mean =
            |f: &dyn Fn(&str, &str) -> f64| pairs.iter().map(|(r, a)| f(a, r)).sum::<f64>() / n;
        Some(AnswerAgreement {
            exact: mean(&|a, r| f64::from(u8::from(a.trim() == r.trim()))),
            prefix: mean(&prefix_agreement),
            similarity: mean(&token_f1),
        })
    }

    /// Accuracy of a candidate's answers relative to the baseline (1.0 = as good).
    pub fn relative(&self, answers: &[String]) -> Option<f64> {
        if let (Some(base), Some(cand)) = (self.baseline_task, self.mean_task(answers))
            && base > 0.0
        {
            return Some((cand / base).min(1.0));
        }
        let level = self.self_agreement.unwrap_or(1.0);
        self.mean_agreement(answers).map(|a| (a / level).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_and_containment() {
        assert_eq!(task_score("The capital is Canberra.", "Canberra"), 1.0);
        assert_eq!(task_score("Sydney", "Canberra"), 0.0);
        // answer {a,b,c,d}, reference {a,b}: p = 0.5, r = 1 → F1 = 2/3
        assert!((token_f1("a b c d", "a b") - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn exact_prefix_and_similarity_per_request() {
        let r = References::new(
            vec![None, None],
            vec![" the step runs".into(), " a b".into()],
        );
        let d = r.detail(&[" the step sits".into(), " a b".into()]).unwrap();
        assert_eq!(d.exact, 0.5);
        // 2 of 3 tokens before the first difference; the second answer is identical.
        assert!((d.prefix - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12, "{d:?}");
        assert!(
            (d.similarity - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12,
            "{d:?}"
        );
        // A difference at the first token loses the whole prefix, not a position.
        assert_eq!(prefix_agreement(" x the step", " y the step"), 0.0);
        assert!(agreement(" x the step", " y the step") > 0.6);
    }

    #[test]
    fn agreement_counts_positions() {
        assert_eq!(agreement(" the model serves", " the model serves"), 1.0);
        // 3 tokens, last differs
        assert!((agreement(" the step runs", " the step sits") - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn relative_prefers_task_accuracy_when_baseline_scores() {
        let r = References::new(
            vec![Some("Canberra".into()), None],
            vec!["Canberra.".into(), " x y".into()],
        );
        assert_eq!(r.baseline_task, Some(1.0));
        assert_eq!(
            r.relative(&["It is Canberra".into(), "zzz".into()]),
            Some(1.0)
        );
        assert_eq!(r.relative(&["Sydney".into(), "zzz".into()]), Some(0.0));
        // Baseline fails every reference: fall back to agreement with its answers.
        let r = References::new(vec![Some("Canberra".into())], vec![" the step".into()]);
        assert_eq!(r.relative(&[" the step".into()]), Some(1.0));
        assert_eq!(r.relative(&[" the runs".into()]), Some(0.5));
    }

    #[test]
    fn a_request_the_baseline_failed_is_no_reference() {
        let r = References::new(vec![None, None], vec![" the step".into(), String::new()]);
        assert_eq!(
            r.relative(&[" the step".into(), " any text".into()]),
            Some(1.0)
        );
        // The candidate failing a request the baseline answered still counts against it.
        assert_eq!(r.relative(&[String::new(), " any text".into()]), Some(0.0));
    }

    #[test]
    fn agreement_is_judged_against_the_engines_own_variation() {
        let base = vec![" the step runs".to_string()];
        let mut r = References::new(vec![None], base);
        // A second baseline run agreed on 2 of 3 tokens: that is the engine's own level.
        r.calibrate(&[" the step sits".to_string()]);
        assert!((r.self_agreement.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.relative(&[" the step hums".into()]), Some(1.0));
        assert!((r.relative(&[" the gpu hums".into()]).unwrap() - 0.5).abs() < 1e-12);
    }
}
