//! Turning token-level outputs into one answer per text.

/// Mean of the token vectors whose attention mask is 1 (padding excluded), as
/// sentence-transformers pools. `values` is `[batch, seq, hidden]` row-major.
pub fn mean_pool(
    values: &[f32],
    batch: usize,
    seq: usize,
    hidden: usize,
    mask: &[&[u32]],
) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut sum = vec![0f32; hidden];
            let mut count = 0f32;
            for s in 0..seq {
                if mask.get(b).and_then(|m| m.get(s)).copied().unwrap_or(0) == 0 {
                    continue;
                }
                count += 1.0;
                let row = &values[(b * seq + s) * hidden..(b * seq + s + 1) * hidden];
                sum.iter_mut().zip(row).for_each(|(acc, v)| *acc += v);
            }
            // sentence-transformers clamps the count to 1e-9; a text always has [CLS].
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|v| *v /= count);
            sum
        })
        .collect()
}

pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Index of the largest value; the first one on ties.
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding() {
        // Two texts, three positions, hidden 2; the second text has one padding position.
        let values = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 99.0, 99.0,
        ];
        let mask: [&[u32]; 2] = [&[1, 1, 1], &[1, 1, 0]];
        let pooled = mean_pool(&values, 2, 3, 2, &mask);
        assert_eq!(pooled, vec![vec![3.0, 4.0], vec![20.0, 30.0]]);
    }

    #[test]
    fn normalize_softmax_argmax() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let p = softmax(&[1000.0, 1000.0]);
        assert_eq!(p, vec![0.5, 0.5]);
        assert_eq!(argmax(&p), 0, "ties go to the first class");
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
    }
}
