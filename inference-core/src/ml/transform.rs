//! Post transforms and score conventions shared by the tree and SVM kernels, in float32
//! as onnxruntime computes them.

use tract_onnx::tract_hir::internal::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

pub fn parse_post(s: &str) -> TractResult<Post> {
    Ok(match s {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        "SOFTMAX_ZERO" => Post::SoftmaxZero,
        "PROBIT" => Post::Probit,
        other => bail!("unknown post_transform {other:?}"),
    })
}

pub fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 {
        1.0 - e
    } else {
        e
    }
}

/// onnxruntime's approximation of the inverse error function (Winitzki, a = 0.147), with
/// its truncated pi so results match.
#[allow(clippy::approx_constant)]
fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (3.14159f32 * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

pub fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// Softmax that leaves zero scores (classes no tree voted for) at zero.
pub fn softmax_zero(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// Applies `post` to a row of two or more scores.
pub fn apply(post: Post, values: &mut [f32]) {
    match post {
        Post::None => {}
        Post::Logistic => values.iter_mut().for_each(|v| *v = logistic(*v)),
        Post::Softmax => softmax(values),
        Post::SoftmaxZero => softmax_zero(values),
        Post::Probit => values.iter_mut().for_each(|v| *v = probit(*v)),
    }
}

/// How a single binary score becomes two columns (onnxruntime's `add_second_class`):
/// 0/1 — all weights positive, the score is a probability: `[1 - s, s]`;
/// 2/3 — mixed weights, the score is a margin: `[-s, s]`, or logistic of both with LOGISTIC.
pub fn second_class(post: Post, add: i32, s: f32) -> Vec<f32> {
    if post == Post::Probit {
        return vec![probit(s)];
    }
    match add {
        0 | 1 => vec![1.0 - s, s],
        2 | 3 if post == Post::Logistic => vec![logistic(-s), logistic(s)],
        2 | 3 => vec![-s, s],
        _ => vec![s],
    }
}

/// A row of scores as written out: transformed when there are two or more, expanded to two
/// columns by `second_class` when there is one.
pub fn write_scores(post: Post, add: i32, mut scores: Vec<f32>) -> Vec<f32> {
    if scores.len() >= 2 {
        apply(post, &mut scores);
        scores
    } else if let Some(&s) = scores.first() {
        second_class(post, add, s)
    } else {
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms() {
        assert!((logistic(0.0) - 0.5).abs() < 1e-7);
        assert!((logistic(-3.0) + logistic(3.0) - 1.0).abs() < 1e-6);
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.96).abs() < 0.01, "{}", probit(0.975));
        let mut v = vec![1.0, 2.0, 3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6 && v[2] > v[1]);
        let mut z = vec![0.0, 2.0, 1.0];
        softmax_zero(&mut z);
        assert_eq!(z[0], 0.0);
        assert_eq!(
            write_scores(Post::None, 0, vec![0.8]),
            vec![0.19999999, 0.8]
        );
        assert_eq!(write_scores(Post::None, 2, vec![0.8]), vec![-0.8, 0.8]);
        assert_eq!(write_scores(Post::None, -1, vec![0.8]), vec![0.8]);
    }
}
