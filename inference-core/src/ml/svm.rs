//! `SVMClassifier` and `SVMRegressor` (ai.onnx.ml 1): linear, poly, rbf and sigmoid
//! kernels over the support vectors, one-vs-one voting with libsvm's pairwise
//! probabilities when `prob_a`/`prob_b` are given, as onnxruntime computes them.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{self, floats, ints, no_strings};
use super::op::{classifier_outputs, classify_rows, rows_f32, Kernel, Out, Shape};
use super::transform::{apply, logistic, parse_post, second_class, Post};

#[derive(Clone, Copy, Debug, PartialEq)]
enum KernelType {
    Linear,
    Poly,
    Rbf,
    Sigmoid,
}

#[derive(Debug)]
struct SvmKernel {
    kind: KernelType,
    gamma: f32,
    coef0: f32,
    degree: f32,
}

impl SvmKernel {
    fn parse(node: &NodeProto) -> TractResult<SvmKernel> {
        let kind = match attrs::string_or(node, "kernel_type", "LINEAR")?.as_str() {
            "LINEAR" => KernelType::Linear,
            "POLY" => KernelType::Poly,
            "RBF" => KernelType::Rbf,
            "SIGMOID" => KernelType::Sigmoid,
            other => bail!("unknown kernel_type {other:?}"),
        };
        let p = floats(node, "kernel_params")?;
        let at = |i: usize| p.get(i).copied().unwrap_or(0.0);
        Ok(SvmKernel {
            kind,
            gamma: at(0),
            coef0: at(1),
            degree: at(2),
        })
    }

    /// K(x, v). `c` is the constant of a plain dot product (the linear mode's rho).
    fn apply(&self, x: &[f32], v: &[f32], c: f32) -> f32 {
        match self.kind {
            KernelType::Rbf => {
                let mut sum = 0.0f32;
                for (a, b) in x.iter().zip(v) {
                    let d = a - b;
                    sum += d * d;
                }
                (-self.gamma * sum).exp()
            }
            KernelType::Linear => dot(x, v) + c,
            KernelType::Poly => {
                let base = self.gamma * dot(x, v) + self.coef0;
                if self.degree == 2.0 {
                    base * base
                } else if self.degree == 3.0 {
                    base * base * base
                } else {
                    base.powf(self.degree)
                }
            }
            KernelType::Sigmoid => (self.gamma * dot(x, v) + self.coef0).tanh(),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// libsvm's multiclass probability from pairwise ones (Wu, Lin and Weng, 2004), in f32 with
/// onnxruntime's iteration limit and tolerance.
fn multiclass_probability(k: usize, r: &[f32]) -> Vec<f32> {
    let mut q = vec![0.0f32; k * k];
    let mut qp = vec![0.0f32; k];
    let mut p = vec![1.0 / k as f32; k];
    let eps = 0.005f32 / k as f32;
    for i in 0..k {
        for j in 0..i {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = q[j * k + i];
        }
        for j in i + 1..k {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    for _ in 0..100 {
        let mut pqp = 0.0f32;
        for i in 0..k {
            qp[i] = 0.0;
            for j in 0..k {
                qp[i] += q[i * k + j] * p[j];
            }
            pqp += p[i] * qp[i];
        }
        let max_error = (0..k).map(|i| (qp[i] - pqp).abs()).fold(0.0f32, f32::max);
        if max_error < eps {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

#[derive(Debug)]
struct Classifier {
    kernel: SvmKernel,
    labels: Vec<i64>,
    /// Support vectors per class; empty in linear (liblinear) mode.
    per_class: Vec<usize>,
    starts: Vec<usize>,
    vectors: Vec<f32>,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    post: Post,
    features: usize,
    weights_positive: bool,
}

pub fn classifier(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    no_strings(node, "SVMClassifier", &["classlabels_strings"])?;
    let fail = |e: TractError| format_err!("SVMClassifier: {e}");
    let kernel = SvmKernel::parse(node).map_err(fail)?;
    let labels = ints(node, "classlabels_ints")?;
    if labels.len() < 2 {
        bail!(
            "SVMClassifier: needs at least two classlabels_ints, got {}",
            labels.len()
        );
    }
    let per_class: Vec<usize> = ints(node, "vectors_per_class")?
        .into_iter()
        .map(|v| {
            usize::try_from(v).map_err(|_| format_err!("SVMClassifier: negative vectors_per_class"))
        })
        .collect::<TractResult<_>>()?;
    let mut starts = Vec::with_capacity(per_class.len());
    let mut count = 0;
    for &v in &per_class {
        starts.push(count);
        count += v;
    }
    let vectors = floats(node, "support_vectors")?;
    let coefficients = floats(node, "coefficients")?;
    let rho = floats(node, "rho")?;
    let prob_a = floats(node, "prob_a")?;
    let prob_b = floats(node, "prob_b")?;
    let post = parse_post(&attrs::string_or(node, "post_transform", "NONE")?)?;
    let k = labels.len();
    let pairs = k * (k - 1) / 2;
    if coefficients.is_empty() {
        bail!("SVMClassifier: no coefficients");
    }
    if prob_a.len() != prob_b.len() {
        bail!("SVMClassifier: prob_a and prob_b differ in length");
    }
    let features = if count > 0 {
        if per_class.len() != k {
            bail!(
                "SVMClassifier: vectors_per_class has {} entries for {k} classes",
                per_class.len()
            );
        }
        if vectors.len() % count != 0 || coefficients.len() != (k - 1) * count || rho.len() < pairs
        {
            bail!("SVMClassifier: support_vectors, coefficients and rho do not match {count} vectors and {k} classes");
        }
        if !prob_a.is_empty() && prob_a.len() < pairs {
            bail!("SVMClassifier: prob_a needs {pairs} values");
        }
        vectors.len() / count
    } else {
        if coefficients.len() % k != 0 || rho.is_empty() {
            bail!("SVMClassifier: linear coefficients do not divide into {k} classes");
        }
        coefficients.len() / k
    };
    let weights_positive = coefficients.iter().all(|&c| c >= 0.0);
    let kernel = if count > 0 {
        kernel
    } else {
        SvmKernel {
            kind: KernelType::Linear,
            ..kernel
        }
    };
    Ok(Arc::new(Classifier {
        kernel,
        labels,
        per_class,
        starts,
        vectors,
        coefficients,
        rho,
        prob_a,
        prob_b,
        post,
        features,
        weights_positive,
    }))
}

impl Classifier {
    fn svc(&self) -> bool {
        !self.per_class.is_empty() && self.per_class.iter().sum::<usize>() > 0
    }

    fn score_columns(&self) -> usize {
        let k = self.labels.len();
        if self.svc() && self.prob_a.is_empty() {
            if k > 2 {
                k * (k - 1) / 2
            } else {
                2
            }
        } else {
            k
        }
    }

    fn row(&self, x: &[f32]) -> (i64, Vec<f32>) {
        let k = self.labels.len();
        let f = self.features;
        if !self.svc() {
            let scores: Vec<f32> = (0..k)
                .map(|c| {
                    self.kernel
                        .apply(x, &self.coefficients[c * f..(c + 1) * f], self.rho[0])
                })
                .collect();
            let (best, max) = first_max(&scores);
            let label = self.choose(best, max);
            let mut out = scores;
            apply(self.post, &mut out);
            return (label, out);
        }
        let count: usize = self.per_class.iter().sum();
        let kernels: Vec<f32> = (0..count)
            .map(|v| self.kernel.apply(x, &self.vectors[v * f..(v + 1) * f], 0.0))
            .collect();
        let mut votes = vec![0usize; k];
        let mut pair_scores = Vec::with_capacity(k * (k - 1) / 2);
        let mut idx = 0;
        for i in 0..k - 1 {
            for j in i + 1..k {
                let mut sum = 0.0f64;
                let (si, ni) = (self.starts[i], self.per_class[i]);
                let (sj, nj) = (self.starts[j], self.per_class[j]);
                for m in 0..ni {
                    sum += (self.coefficients[(j - 1) * count + si + m] * kernels[si + m]) as f64;
                }
                for m in 0..nj {
                    sum += (self.coefficients[i * count + sj + m] * kernels[sj + m]) as f64;
                }
                sum += self.rho[idx] as f64;
                idx += 1;
                pair_scores.push(sum as f32);
                votes[if sum > 0.0 { i } else { j }] += 1;
            }
        }
        // The first class with the most votes.
        let mut best = 0;
        for c in 1..k {
            if votes[c] > votes[best] {
                best = c;
            }
        }
        let label = self.choose(best, 0.0);
        let scores = if !self.prob_a.is_empty() {
            let mut r = vec![0.0f32; k * k];
            let mut index = 0;
            for i in 0..k - 1 {
                for j in i + 1..k {
                    let v = 1.0
                        - logistic(pair_scores[index] * self.prob_a[index] + self.prob_b[index]);
                    let v = v.clamp(1.0e-7, 1.0 - 1.0e-7);
                    r[i * k + j] = v;
                    r[j * k + i] = 1.0 - v;
                    index += 1;
                }
            }
            let mut p = multiclass_probability(k, &r);
            apply(self.post, &mut p);
            p
        } else if k > 2 {
            let mut s = pair_scores;
            apply(self.post, &mut s);
            s
        } else {
            let add = if self.post == Post::None { 2 } else { 0 };
            second_class(self.post, add, pair_scores[0])
        };
        (label, scores)
    }

    /// onnxruntime's choice of label for two classes; the top class otherwise.
    fn choose(&self, best: usize, max_weight: f32) -> i64 {
        if self.labels.len() != 2 {
            return self.labels[best];
        }
        if self.prob_a.is_empty()
            && ((self.weights_positive && max_weight >= 0.5)
                || (max_weight > 0.0 && !self.weights_positive))
        {
            return self.labels[1];
        }
        self.labels[best]
    }
}

fn first_max(v: &[f32]) -> (usize, f32) {
    let mut best = 0;
    for i in 1..v.len() {
        if v[i] > v[best] {
            best = i;
        }
    }
    (best, v.get(best).copied().unwrap_or(0.0))
}

impl Kernel for Classifier {
    fn name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn outputs(&self) -> Vec<Out> {
        classifier_outputs(self.score_columns())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, rows, features) = rows_f32(input)?;
        if features != self.features {
            bail!(
                "SVMClassifier expects {} features, rows have {features}",
                self.features
            );
        }
        classify_rows(rows, self.score_columns(), |r| {
            Ok(self.row(&x[r * features..(r + 1) * features]))
        })
    }
}

#[derive(Debug)]
struct Regressor {
    kernel: SvmKernel,
    vectors: Vec<f32>,
    count: usize,
    coefficients: Vec<f32>,
    rho: f32,
    one_class: bool,
    features: usize,
}

pub fn regressor(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    let kernel = SvmKernel::parse(node).map_err(|e| format_err!("SVMRegressor: {e}"))?;
    let count = node.get_attr_opt::<i64>("n_supports")?.unwrap_or(0);
    let count =
        usize::try_from(count).map_err(|_| format_err!("SVMRegressor: negative n_supports"))?;
    let vectors = floats(node, "support_vectors")?;
    let coefficients = floats(node, "coefficients")?;
    let rho = floats(node, "rho")?;
    let one_class = node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0;
    let Some(&rho) = rho.first() else {
        bail!("SVMRegressor: no rho");
    };
    let (features, kernel) = if count > 0 {
        if vectors.len() % count != 0 || coefficients.len() != count {
            bail!("SVMRegressor: support_vectors and coefficients do not match n_supports {count}");
        }
        (vectors.len() / count, kernel)
    } else {
        if coefficients.is_empty() {
            bail!("SVMRegressor: no coefficients");
        }
        (
            coefficients.len(),
            SvmKernel {
                kind: KernelType::Linear,
                ..kernel
            },
        )
    };
    Ok(Arc::new(Regressor {
        kernel,
        vectors,
        count,
        coefficients,
        rho,
        one_class,
        features,
    }))
}

impl Kernel for Regressor {
    fn name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn outputs(&self) -> Vec<Out> {
        vec![Out {
            dt: f32::datum_type(),
            shape: Shape::Rows(1),
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, rows, features) = rows_f32(input)?;
        if features != self.features {
            bail!(
                "SVMRegressor expects {} features, rows have {features}",
                self.features
            );
        }
        let f = features;
        let out: Vec<f32> = (0..rows)
            .map(|r| {
                let row = &x[r * f..(r + 1) * f];
                let mut y = if self.count > 0 {
                    let mut sum = 0.0f32;
                    for v in 0..self.count {
                        sum += self
                            .kernel
                            .apply(row, &self.vectors[v * f..(v + 1) * f], 0.0)
                            * self.coefficients[v];
                    }
                    sum + self.rho
                } else {
                    self.kernel.apply(row, &self.coefficients, self.rho)
                };
                if self.one_class {
                    y = if y > 0.0 { 1.0 } else { -1.0 };
                }
                // onnxruntime ignores post_transform for SVMRegressor; so do we.
                y
            })
            .collect();
        Ok(tvec![Tensor::from_shape(&[rows, 1], &out)?])
    }
}
