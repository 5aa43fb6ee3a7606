//! ONNX external data: exports over 2 GB — and many Hugging Face exports under it — keep
//! their weights in side files (`model.onnx_data`), each tensor naming its `location`,
//! `offset` and `length`. Packing inlines them, so the packed model is one file the build
//! embeds and the fallback stores serve like any other.

use std::collections::BTreeMap;

use tract_onnx::pb::{tensor_proto::DataLocation, ModelProto, TensorProto};

/// One protobuf message (an ONNX file) cannot exceed 2 GiB: past it, weights must stay
/// outside, which a packed model cannot.
pub const MAX_INLINED_BYTES: u64 = 2 * 1024 * 1024 * 1024 - 1;

/// The side files an ONNX model's tensors point at, sorted; empty for a self-contained one.
pub fn external_data_locations(model: &ModelProto) -> Vec<String> {
    let mut found: Vec<String> = tensors(model)
        .filter(|t| is_external(t))
        .filter_map(|t| entry(t, "location").map(str::to_string))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Every external tensor's bytes copied in from `files` (by location), its external
/// reference removed. Each offset and length is checked against its file; the caller checks
/// the total against [`MAX_INLINED_BYTES`] first.
pub(crate) fn inline_external_data(
    model: &mut ModelProto,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    for t in tensors_mut(model) {
        if !is_external(t) {
            continue;
        }
        let location = entry(t, "location")
            .ok_or_else(|| format!("tensor {:?} is external but names no location", t.name))?
            .to_string();
        let file = files.get(&location).ok_or_else(|| {
            format!(
                "tensor {:?} is in external data {location:?}, which was not given",
                t.name
            )
        })?;
        let number = |key: &str| -> Result<Option<u64>, String> {
            entry(t, key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        format!(
                            "tensor {:?}: external data {key} {v:?} is not a number",
                            t.name
                        )
                    })
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let size = file.len() as u64;
        let length = number("length")?.unwrap_or(size.saturating_sub(offset));
        let end = offset.checked_add(length).filter(|end| *end <= size).ok_or_else(|| {
            format!(
                "tensor {:?}: bytes {offset}..{} of {location:?}, which has {size}: the data file does not match the model",
                t.name,
                offset.saturating_add(length)
            )
        })?;
        t.raw_data = file[offset as usize..end as usize].to_vec();
        t.external_data.clear();
        t.data_location = Some(DataLocation::Default as i32);
    }
    Ok(())
}

pub(crate) fn too_big(bytes: u64) -> String {
    format!(
        "the model with its external data inlined would be {:.2} GB: one ONNX file holds at most 2 GB (protobuf's limit), a zip function 250 MB unzipped and a container image 10 GB; this model cannot be packed as one file",
        bytes as f64 / 1e9
    )
}

fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
}

fn entry<'a>(t: &'a TensorProto, key: &str) -> Option<&'a str> {
    t.external_data
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.as_str())
}

/// The tensors that may hold weights: initializers, and `Constant` nodes' values.
fn tensors(model: &ModelProto) -> impl Iterator<Item = &TensorProto> {
    model.graph.iter().flat_map(|g| {
        g.initializer.iter().chain(
            g.node
                .iter()
                .flat_map(|n| n.attribute.iter().filter_map(|a| a.t.as_ref())),
        )
    })
}

fn tensors_mut(model: &mut ModelProto) -> impl Iterator<Item = &mut TensorProto> {
    model.graph.iter_mut().flat_map(|g| {
        g.initializer.iter_mut().chain(
            g.node
                .iter_mut()
                .flat_map(|n| n.attribute.iter_mut().filter_map(|a| a.t.as_mut())),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{self, StringStringEntryProto};

    fn external(name: &str, location: &str, offset: u64, length: u64) -> TensorProto {
        let kv = |key: &str, value: String| StringStringEntryProto {
            key: key.into(),
            value,
        };
        TensorProto {
            name: name.into(),
            dims: vec![2],
            data_type: pb::tensor_proto::DataType::Float as i32,
            data_location: Some(DataLocation::External as i32),
            external_data: vec![
                kv("location", location.into()),
                kv("offset", offset.to_string()),
                kv("length", length.to_string()),
            ],
            ..Default::default()
        }
    }

    fn model(tensors: Vec<TensorProto>) -> ModelProto {
        ModelProto {
            graph: Some(pb::GraphProto {
                initializer: tensors,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn tensors_are_copied_in_from_their_offsets() {
        let data: Vec<u8> = (0u8..16).collect();
        let mut m = model(vec![
            external("a", "w.bin", 0, 8),
            external("b", "w.bin", 8, 8),
        ]);
        assert_eq!(external_data_locations(&m), ["w.bin"]);
        inline_external_data(&mut m, &BTreeMap::from([("w.bin".into(), data.clone())])).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.initializer[0].raw_data, data[..8]);
        assert_eq!(g.initializer[1].raw_data, data[8..]);
        assert!(g
            .initializer
            .iter()
            .all(|t| !is_external(t) && t.external_data.is_empty()));
        assert!(external_data_locations(&m).is_empty());
    }

    #[test]
    fn a_missing_file_or_a_short_one_is_named() {
        let mut m = model(vec![external("a", "w.bin", 4, 8)]);
        let e = inline_external_data(&mut m, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("\"w.bin\", which was not given"), "{e}");
        let e = inline_external_data(&mut m, &BTreeMap::from([("w.bin".into(), vec![0; 10])]))
            .unwrap_err();
        assert!(e.contains("bytes 4..12 of \"w.bin\", which has 10"), "{e}");
        assert!(too_big(3_000_000_000).contains("3.00 GB"));
    }
}
