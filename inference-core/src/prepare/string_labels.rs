//! String class labels. A scikit-learn classifier trained on `y = ["setosa", …]` — the usual
//! case — exports its classes as `classlabels_strings` (tree ensembles, linear and SVM
//! classifiers), and its label output as a string tensor. Packing rewrites the labels to
//! their indices (`0..n` as `classlabels_int64s` / `classlabels_ints`), so the plan runs on
//! integers; the names go into the lock (`ClassLabels`) and the function answers the label
//! output as the names again, the JSON a Python user gets from onnxruntime.

use std::collections::HashSet;

use model_lock::ClassLabels;
use tract_onnx::pb::{self, attribute_proto::AttributeType, ModelProto};

/// The classifiers with string labels, and the attribute their integer labels go in.
const CLASSIFIERS: [(&str, &str); 3] = [
    ("TreeEnsembleClassifier", "classlabels_int64s"),
    ("SVMClassifier", "classlabels_ints"),
    ("LinearClassifier", "classlabels_ints"),
];

/// Rewrites string class labels to indices; `None` when the model has none. A label output
/// that feeds anything but an `Identity` on its way to a graph output cannot be mapped back
/// to names, and is refused naming the node.
pub fn string_labels_to_indices(model: &mut ModelProto) -> Result<Option<ClassLabels>, String> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(None);
    };
    let mut names: Option<Vec<String>> = None;
    let mut labels: HashSet<String> = HashSet::new();
    for node in graph.node.iter_mut() {
        let Some((_, int_attr)) = CLASSIFIERS.iter().find(|(op, _)| *op == node.op_type) else {
            continue;
        };
        let Some(at) = node
            .attribute
            .iter()
            .position(|a| a.name == "classlabels_strings" && !a.strings.is_empty())
        else {
            continue;
        };
        let these: Vec<String> = node.attribute[at]
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        match &names {
            Some(known) if *known != these => {
                return Err(format!(
                    "{} {:?} has class labels {these:?}, another classifier {known:?}: one set of string labels per model is supported",
                    node.op_type, node.name
                ))
            }
            _ => names = Some(these.clone()),
        }
        node.attribute.remove(at);
        node.attribute.retain(|a| a.name != *int_attr);
        node.attribute.push(pb::AttributeProto {
            name: int_attr.to_string(),
            r#type: AttributeType::Ints as i32,
            ints: (0..these.len() as i64).collect(),
            ..Default::default()
        });
        if let Some(label) = node.output.first() {
            labels.insert(label.clone());
        }
    }
    let Some(names) = names else {
        return Ok(None);
    };
    // Follow the labels through Identity nodes; anything else would need the strings.
    loop {
        let before = labels.len();
        for node in &graph.node {
            if !node.input.iter().any(|i| labels.contains(i)) {
                continue;
            }
            if node.op_type != "Identity" {
                return Err(format!(
                    "the string class labels feed {} node {:?}; only a label output served as it comes (or through Identity) can be answered with its names: export the classifier alone, or with integer labels",
                    node.op_type, node.name
                ));
            }
            labels.extend(node.output.iter().cloned());
        }
        if labels.len() == before {
            break;
        }
    }
    let int64 = pb::tensor_proto::DataType::Int64 as i32;
    let mut outputs = Vec::new();
    for value in graph.output.iter_mut().chain(graph.value_info.iter_mut()) {
        if !labels.contains(&value.name) {
            continue;
        }
        if let Some(pb::type_proto::Value::TensorType(t)) =
            value.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.elem_type = int64;
        }
    }
    for value in &graph.output {
        if labels.contains(&value.name) {
            outputs.push(value.name.clone());
        }
    }
    Ok(Some(ClassLabels { outputs, names }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier(op: &str, extra: Option<pb::NodeProto>) -> ModelProto {
        let strings = pb::AttributeProto {
            name: "classlabels_strings".into(),
            r#type: AttributeType::Strings as i32,
            strings: vec![b"setosa".to_vec(), b"versicolor".to_vec()],
            ..Default::default()
        };
        let mut nodes = vec![pb::NodeProto {
            name: "clf".into(),
            op_type: op.into(),
            domain: "ai.onnx.ml".into(),
            input: vec!["x".into()],
            output: vec!["label".into(), "probabilities".into()],
            attribute: vec![strings],
            ..Default::default()
        }];
        nodes.extend(extra);
        let string_output = |name: &str| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::String as i32,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        ModelProto {
            graph: Some(pb::GraphProto {
                node: nodes,
                output: vec![string_output("output_label")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn identity(from: &str, to: &str, op: &str) -> pb::NodeProto {
        pb::NodeProto {
            name: "after".into(),
            op_type: op.into(),
            input: vec![from.into()],
            output: vec![to.into()],
            ..Default::default()
        }
    }

    #[test]
    fn labels_become_indices_and_the_output_int64() {
        for (op, attr) in CLASSIFIERS {
            let mut m = classifier(op, Some(identity("label", "output_label", "Identity")));
            let labels = string_labels_to_indices(&mut m).unwrap().unwrap();
            assert_eq!(labels.names, ["setosa", "versicolor"]);
            assert_eq!(labels.outputs, ["output_label"]);
            let g = m.graph.unwrap();
            let node = &g.node[0];
            assert!(node
                .attribute
                .iter()
                .all(|a| a.name != "classlabels_strings"));
            let ints = node.attribute.iter().find(|a| a.name == attr).unwrap();
            assert_eq!(ints.ints, [0, 1], "{op}");
            let Some(pb::type_proto::Value::TensorType(t)) =
                g.output[0].r#type.as_ref().unwrap().value.as_ref()
            else {
                panic!("a tensor output")
            };
            assert_eq!(t.elem_type, pb::tensor_proto::DataType::Int64 as i32);
        }
    }

    #[test]
    fn integer_labels_are_left_alone_and_other_consumers_refused() {
        let mut m = classifier("LinearClassifier", None);
        m.graph.as_mut().unwrap().node[0].attribute.clear();
        assert_eq!(string_labels_to_indices(&mut m).unwrap(), None);
        let mut m = classifier(
            "SVMClassifier",
            Some(identity("label", "output_label", "LabelEncoder")),
        );
        let e = string_labels_to_indices(&mut m).unwrap_err();
        assert!(e.contains("feed LabelEncoder node \"after\""), "{e}");
    }
}
