//! A cross-encoder's answer: one relevance score per (query, document) pair, in the order
//! sent, and the documents' order by that score.

use model_lock::Dim;

use crate::error::RequestError;

/// Whether an output can be read as one relevance score per row: a single logit
/// (`[batch, 1]` or `[batch]`), or two classes (`[batch, 2]`: not relevant, relevant).
pub(super) fn fits(shape: &[Dim]) -> bool {
    matches!(shape, [_] | [_, Dim::Fixed(1 | 2)])
}

#[derive(Debug, PartialEq)]
pub(super) struct Ranked {
    /// In the order the pairs came: a single logit through the logistic function (as
    /// Hugging Face's text-classification pipeline and sentence-transformers' CrossEncoder
    /// score one-label models), the "relevant" class's softmax probability for two.
    pub scores: Vec<f32>,
    /// Indices of the pairs by decreasing score (ties in the order sent), `top_k` of them.
    pub ranking: Vec<usize>,
}

pub(super) fn rank(
    shape: &[usize],
    values: &[f32],
    top_k: Option<usize>,
) -> Result<Ranked, RequestError> {
    let scores: Vec<f32> = match shape {
        [_] | [_, 1] => values.iter().map(|x| sigmoid(*x)).collect(),
        [_, 2] => values
            .chunks(2)
            .map(|row| sigmoid(row[1] - row[0]))
            .collect(),
        _ => {
            return Err(RequestError::Internal(format!(
                "rerank output has shape {shape:?}"
            )))
        }
    };
    // A score that is not a number (NaN logits) ranks last.
    let key = |i: usize| {
        let s = scores[i];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    };
    let mut ranking: Vec<usize> = (0..scores.len()).collect();
    ranking.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    ranking.truncate(top_k.unwrap_or(usize::MAX));
    Ok(Ranked { scores, ranking })
}

/// The logistic function; for two classes, `sigmoid(b - a)` is softmax's second probability.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_logit_two_classes_and_top_k() {
        let r = rank(&[3, 1], &[0.0, 2.0, -1.0], None).unwrap();
        assert_eq!(r.ranking, vec![1, 0, 2]);
        assert!((r.scores[0] - 0.5).abs() < 1e-6);
        assert!((r.scores[1] - 0.880_797).abs() < 1e-5);
        let r = rank(&[3], &[0.0, 2.0, -1.0], Some(2)).unwrap();
        assert_eq!(r.ranking, vec![1, 0]);
        assert_eq!(r.scores.len(), 3, "every score, in the order sent");
        // Two classes: softmax's "relevant" probability.
        let r = rank(&[2, 2], &[1.0, 3.0, 0.0, 0.0], None).unwrap();
        let want = 3f32.exp() / (1f32.exp() + 3f32.exp());
        assert!((r.scores[0] - want).abs() < 1e-6);
        assert_eq!(r.ranking, vec![0, 1]);
    }

    #[test]
    fn ties_keep_order_and_nan_ranks_last() {
        let r = rank(&[4, 1], &[f32::NAN, 1.0, 1.0, -5.0], None).unwrap();
        assert_eq!(r.ranking, vec![1, 2, 3, 0]);
        assert!(rank(&[2, 3], &[0.0; 6], None).is_err());
    }

    #[test]
    fn shapes_that_fit() {
        let b = || Dim::Symbol("batch".into());
        assert!(fits(&[b()]));
        assert!(fits(&[b(), Dim::Fixed(1)]));
        assert!(fits(&[b(), Dim::Fixed(2)]));
        assert!(!fits(&[b(), Dim::Fixed(3)]));
        assert!(!fits(&[b(), Dim::Symbol("seq".into())]));
        assert!(!fits(&[b(), Dim::Fixed(1), Dim::Fixed(1)]));
    }
}
