"""A model too big for a zip, for the container-image tests. Run by `cargo xtask test`
(xtask/src/test_data.rs):

    python big_model.py OUTDIR

An embedding table of seeded normal noise (64,000 x 1,100 float32: 281.6 MB, which gzip
cannot shrink much) looked up by int64 ids (Gather) and summed per id, so every answer
depends on the rows read. Writes `big.onnx`, a sample request (`sample.json`) and
onnxruntime's answer to it (`expected.json`).
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROWS, COLS = 64_000, 1_100
SAMPLE = [[0, 1, ROWS - 1, 31_337], [5, 5, 5, 5]]


def main(out):
    table = np.random.default_rng(21).standard_normal((ROWS, COLS), dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),
            helper.make_node("ReduceSum", ["rows", "axes"], ["sums"], keepdims=0),
        ],
        "big",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("sums", TensorProto.FLOAT, ["batch", 4])],
        [
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(out, "big.onnx")
    onnx.save(model, path)
    request = {"inputs": {"ids": SAMPLE}}
    with open(os.path.join(out, "sample.json"), "w") as f:
        json.dump(request, f)
    sums = ort.InferenceSession(path).run(None, {"ids": np.array(SAMPLE, dtype=np.int64)})[0]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"sums": sums.tolist()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
