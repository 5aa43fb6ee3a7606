//! `TreeEnsembleRegressor` and `TreeEnsembleClassifier` (ai.onnx.ml 1 and 3). tract's own
//! classifier takes the argmax over a single binary score column and rejects two
//! `base_values`, and it has no regressor; this one follows onnxruntime's aggregation,
//! base values and binary conventions, summing in float32 (or in double when the model
//! gives `*_as_tensor` doubles), tree by tree in model order.

use std::collections::{BTreeSet, HashMap};

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{self, floats_or_tensor, ints, no_strings, strings};
use super::op::{classifier_outputs, classify_rows, rows_f64, Kernel, Out, Shape};
use super::transform::{parse_post, write_scores, Post};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

fn parse_mode(s: &str) -> TractResult<Mode> {
    Ok(match s {
        "BRANCH_LEQ" => Mode::Leq,
        "BRANCH_LT" => Mode::Lt,
        "BRANCH_GTE" => Mode::Gte,
        "BRANCH_GT" => Mode::Gt,
        "BRANCH_EQ" => Mode::Eq,
        "BRANCH_NEQ" => Mode::Neq,
        "LEAF" => Mode::Leaf,
        other => bail!("unknown node mode {other:?}"),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug)]
struct Node {
    mode: Mode,
    feature: usize,
    value: f64,
    on_true: usize,
    on_false: usize,
    missing_true: bool,
    /// (target or class, weight) pairs of a leaf.
    weights: Vec<(usize, f64)>,
}

#[derive(Debug)]
struct Ensemble {
    nodes: Vec<Node>,
    roots: Vec<usize>,
    features: usize,
    double: bool,
}

impl Ensemble {
    /// `prefix` is `target` or `class`: the attributes naming the leaves' weights.
    fn parse(node: &NodeProto, prefix: &str, targets: usize) -> TractResult<Ensemble> {
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let feature_ids = ints(node, "nodes_featureids")?;
        let modes = strings(node, "nodes_modes")?;
        let (values, double_values) = floats_or_tensor(node, "nodes_values")?;
        let true_ids = ints(node, "nodes_truenodeids")?;
        let false_ids = ints(node, "nodes_falsenodeids")?;
        let missing = ints(node, "nodes_missing_value_tracks_true")?;
        let n = tree_ids.len();
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", feature_ids.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
        ] {
            if len != n {
                bail!("{name} has {len} entries, nodes_treeids {n}");
            }
        }
        let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
                bail!(
                    "node {} of tree {} is defined twice",
                    node_ids[i],
                    tree_ids[i]
                );
            }
        }
        let mut nodes = Vec::with_capacity(n);
        let mut features = 0;
        for i in 0..n {
            let mode = parse_mode(&modes[i])?;
            let link = |id: i64, which: &str| -> TractResult<usize> {
                match index.get(&(tree_ids[i], id)) {
                    Some(&j) if j != i => Ok(j),
                    _ => bail!(
                        "node {} of tree {}: its {which} node {id} is not in the same tree",
                        node_ids[i],
                        tree_ids[i]
                    ),
                }
            };
            let (on_true, on_false, feature) = if mode == Mode::Leaf {
                (i, i, 0)
            } else {
                let f = usize::try_from(feature_ids[i])
                    .map_err(|_| format_err!("negative feature id {}", feature_ids[i]))?;
                features = features.max(f + 1);
                (link(true_ids[i], "true")?, link(false_ids[i], "false")?, f)
            };
            nodes.push(Node {
                mode,
                feature,
                value: values[i],
                on_true,
                on_false,
                missing_true: missing.get(i) == Some(&1),
                weights: vec![],
            });
        }
        let w_ids = ints(node, &format!("{prefix}_ids"))?;
        let w_nodes = ints(node, &format!("{prefix}_nodeids"))?;
        let w_trees = ints(node, &format!("{prefix}_treeids"))?;
        let (w_values, double_weights) = floats_or_tensor(node, &format!("{prefix}_weights"))?;
        if w_nodes.len() != w_ids.len()
            || w_trees.len() != w_ids.len()
            || w_values.len() != w_ids.len()
        {
            bail!("{prefix}_ids, {prefix}_nodeids, {prefix}_treeids and {prefix}_weights differ in length");
        }
        for k in 0..w_ids.len() {
            let at = *index.get(&(w_trees[k], w_nodes[k])).ok_or_else(|| {
                format_err!(
                    "weight for missing node {} of tree {}",
                    w_nodes[k],
                    w_trees[k]
                )
            })?;
            let target = usize::try_from(w_ids[k])
                .ok()
                .filter(|&t| t < targets)
                .ok_or_else(|| {
                    format_err!("{prefix} id {} out of range (0..{targets})", w_ids[k])
                })?;
            nodes[at].weights.push((target, w_values[k]));
        }
        // A tree's root is its first node in attribute order.
        let mut roots = Vec::new();
        for i in 0..n {
            if i == 0 || tree_ids[i] != tree_ids[i - 1] {
                roots.push(i);
            }
        }
        Ok(Ensemble {
            nodes,
            roots,
            features,
            double: double_values || double_weights,
        })
    }

    /// Rounds to the precision onnxruntime accumulates in.
    fn round(&self, v: f64) -> f64 {
        if self.double {
            v
        } else {
            v as f32 as f64
        }
    }

    fn leaf(&self, root: usize, x: &[f64]) -> TractResult<&Node> {
        let mut at = root;
        // A well-formed tree reaches a leaf in fewer steps than it has nodes.
        for _ in 0..=self.nodes.len() {
            let node = &self.nodes[at];
            let v = x[node.feature];
            let t = node.value;
            let go_true = match node.mode {
                Mode::Leaf => return Ok(node),
                Mode::Leq => v <= t,
                Mode::Lt => v < t,
                Mode::Gte => v >= t,
                Mode::Gt => v > t,
                Mode::Eq => v == t,
                Mode::Neq => v != t,
            } || (node.missing_true && v.is_nan());
            at = if go_true { node.on_true } else { node.on_false };
        }
        bail!("a tree has a cycle")
    }

    fn check_features(&self, features: usize) -> TractResult<()> {
        if features < self.features {
            bail!(
                "the trees read feature {} but rows have {features}",
                self.features - 1
            );
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Regressor {
    trees: Ensemble,
    targets: usize,
    aggregate: Aggregate,
    base: Vec<f64>,
    post: Post,
}

pub fn regressor(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    let targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1);
    let targets = usize::try_from(targets)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| {
            format_err!("TreeEnsembleRegressor: n_targets must be positive, got {targets}")
        })?;
    let aggregate = match attrs::string_or(node, "aggregate_function", "SUM")?.as_str() {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("TreeEnsembleRegressor: unknown aggregate_function {other:?}"),
    };
    let trees = Ensemble::parse(node, "target", targets)
        .map_err(|e| format_err!("TreeEnsembleRegressor: {e}"))?;
    let (base, _) = floats_or_tensor(node, "base_values")?;
    let post = parse_post(&attrs::string_or(node, "post_transform", "NONE")?)?;
    Ok(Arc::new(Regressor {
        trees,
        targets,
        aggregate,
        base,
        post,
    }))
}

impl Regressor {
    fn row(&self, x: &[f64]) -> TractResult<Vec<f32>> {
        let e = &self.trees;
        let n_trees = e.roots.len() as f64;
        let mut scores = vec![(0.0f64, false); self.targets];
        for &root in &e.roots {
            let leaf = e.leaf(root, x)?;
            if self.targets == 1 {
                // One target: only a leaf's first weight counts.
                let w = leaf.weights.first().map(|w| w.1).unwrap_or(0.0);
                self.merge(&mut scores[0], w);
            } else {
                for &(t, w) in &leaf.weights {
                    self.merge(&mut scores[t], w);
                }
            }
        }
        if self.targets == 1 {
            let origin = if self.base.len() == 1 {
                self.base[0]
            } else {
                0.0
            };
            let (s, has) = scores[0];
            let v = match self.aggregate {
                Aggregate::Sum => e.round(s + origin),
                Aggregate::Average => e.round(e.round(s / n_trees) + origin),
                Aggregate::Min | Aggregate::Max if has => e.round(s + origin),
                Aggregate::Min | Aggregate::Max => origin,
            };
            let v = v as f32;
            // With one target, PROBIT is the only transform onnxruntime applies.
            return Ok(vec![if self.post == Post::Probit {
                super::transform::probit(v)
            } else {
                v
            }]);
        }
        let use_base = self.base.len() == self.targets;
        let out: Vec<f32> = scores
            .iter()
            .enumerate()
            .map(|(j, &(s, has))| {
                let b = if use_base { self.base[j] } else { 0.0 };
                let v = match self.aggregate {
                    Aggregate::Sum => e.round(s + b),
                    Aggregate::Average => e.round(e.round(s / n_trees) + b),
                    Aggregate::Min | Aggregate::Max => e.round(b + if has { s } else { 0.0 }),
                };
                v as f32
            })
            .collect();
        Ok(write_scores(self.post, -1, out))
    }

    fn merge(&self, acc: &mut (f64, bool), w: f64) {
        let (s, has) = *acc;
        acc.0 = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => self.trees.round(s + w),
            Aggregate::Min => {
                if !has || w < s {
                    w
                } else {
                    s
                }
            }
            Aggregate::Max => {
                if !has || w > s {
                    w
                } else {
                    s
                }
            }
        };
        acc.1 = true;
    }
}

impl Kernel for Regressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }

    fn outputs(&self) -> Vec<Out> {
        vec![Out {
            dt: f32::datum_type(),
            shape: Shape::Rows(self.targets),
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, rows, features) = rows_f64(input)?;
        self.trees.check_features(features)?;
        let mut out = Vec::with_capacity(rows * self.targets);
        for r in 0..rows {
            let mut row = self.row(&x[r * features..(r + 1) * features])?;
            row.resize(self.targets, 0.0);
            out.extend(row);
        }
        Ok(tvec![Tensor::from_shape(&[rows, self.targets], &out)?])
    }
}

#[derive(Debug)]
struct Classifier {
    trees: Ensemble,
    labels: Vec<i64>,
    base: Vec<f64>,
    post: Post,
    /// Two classes but every leaf weight is for one of them (a single score column).
    binary: bool,
    weights_positive: bool,
}

pub fn classifier(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    no_strings(node, "TreeEnsembleClassifier", &["classlabels_strings"])?;
    let labels = ints(node, "classlabels_int64s")?;
    if labels.len() < 2 {
        bail!(
            "TreeEnsembleClassifier: needs at least two classlabels_int64s, got {}",
            labels.len()
        );
    }
    let trees = Ensemble::parse(node, "class", labels.len())
        .map_err(|e| format_err!("TreeEnsembleClassifier: {e}"))?;
    let (base, _) = floats_or_tensor(node, "base_values")?;
    let post = parse_post(&attrs::string_or(node, "post_transform", "NONE")?)?;
    let class_ids: BTreeSet<usize> = trees
        .nodes
        .iter()
        .flat_map(|n| n.weights.iter().map(|w| w.0))
        .collect();
    let weights_positive = trees
        .nodes
        .iter()
        .all(|n| n.weights.iter().all(|w| w.1 >= 0.0));
    let binary = labels.len() == 2 && class_ids.len() == 1;
    Ok(Arc::new(Classifier {
        trees,
        labels,
        base,
        post,
        binary,
        weights_positive,
    }))
}

impl Classifier {
    /// (label, scores) of one row.
    fn row(&self, x: &[f64]) -> TractResult<(i64, Vec<f32>)> {
        let e = &self.trees;
        let n = self.labels.len();
        let mut p = vec![(0.0f64, false); n];
        for &root in &e.roots {
            for &(c, w) in &e.leaf(root, x)?.weights {
                p[c] = (e.round(p[c].0 + w), true);
            }
        }
        if n > 2 {
            for (k, &b) in self.base.iter().enumerate().take(n) {
                p[k] = if p[k].1 {
                    (e.round(p[k].0 + b), true)
                } else {
                    (b, true)
                };
            }
            // The first class with the highest score, among classes that have one.
            let mut best: Option<usize> = None;
            for (k, &(s, has)) in p.iter().enumerate() {
                if has && best.is_none_or(|b| s > p[b].0) {
                    best = Some(k);
                }
            }
            let label = self.labels[best.unwrap_or(0)];
            let scores = p.iter().map(|&(s, _)| s as f32).collect();
            return Ok((label, write_scores(self.post, -1, scores)));
        }
        let mut add = -1;
        if self.base.len() == 2 {
            if p[1].1 {
                let s1 = e.round(self.base[1] + p[0].0);
                p[1] = (s1, true);
                p[0].0 = -s1;
            } else {
                p[1].0 = e.round(p[1].0 + self.base[1]);
                p[0].0 = e.round(p[0].0 + self.base[0]);
            }
        } else if self.base.len() == 1 {
            p[0].0 = e.round(p[0].0 + self.base[0]);
            if !p[1].1 {
                p.pop();
            }
        } else if self.base.is_empty() {
            add = 3;
            if !p[1].1 {
                p.pop();
            }
        }
        let (s0, h0) = p[0];
        let positive = match p.get(1) {
            Some(&(s1, true)) => s1,
            _ if h0 => s0,
            _ => 0.0,
        };
        let label = if self.binary {
            let (is_positive, code) = if self.weights_positive {
                (positive > 0.5, if positive > 0.5 { 0 } else { 1 })
            } else {
                (positive > 0.0, if positive > 0.0 { 2 } else { 3 })
            };
            add = code;
            self.labels[usize::from(is_positive)]
        } else {
            i64::from(positive > 0.0)
        };
        let scores = p.iter().map(|&(s, _)| s as f32).collect();
        Ok((label, write_scores(self.post, add, scores)))
    }
}

impl Kernel for Classifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn outputs(&self) -> Vec<Out> {
        classifier_outputs(self.labels.len())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, rows, features) = rows_f64(input)?;
        self.trees.check_features(features)?;
        classify_rows(rows, self.labels.len(), |r| {
            self.row(&x[r * features..(r + 1) * features])
        })
    }
}
