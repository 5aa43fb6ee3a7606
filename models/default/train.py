"""Train and export the embedded default model.

A LogisticRegression on scikit-learn's bundled breast-cancer Wisconsin data set, exported with
skl2onnx (ZipMap off, so probabilities are a plain tensor). Also writes `samples.json`:
held-out rows with the class and probabilities scikit-learn itself computed, which the
end-to-end tests compare the Lambda function's answers against.

    python -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python train.py
"""

import json
import pathlib

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = pathlib.Path(__file__).resolve().parent
SEED = 7


def main() -> None:
    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    y = data.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=SEED, stratify=y
    )
    # Logistic regression on the raw features (no scaler: tract has no `Scaler` op yet, and
    # tract 0.23's binary TreeEnsembleClassifier always labels class 0, so no forest either).
    model = LogisticRegression(max_iter=20000, random_state=SEED)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))

    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, x.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onx.graph.doc_string = "LogisticRegression on sklearn breast-cancer data; see models/default/train.py"
    (HERE / "breast_cancer_lr.onnx").write_bytes(onx.SerializeToString())

    rows = x_test[:16]
    proba = model.predict_proba(rows)
    labels = [str(data.target_names[c]) for c in model.classes_]
    samples = {
        "source": "sklearn.datasets.load_breast_cancer, held-out split, random_state=7",
        "accuracy": accuracy,
        "feature_names": [str(n) for n in data.feature_names],
        "labels": labels,
        "rows": [
            {
                # str() of a float32 is its shortest exact form: 16.78, not 16.780000686645508.
                "features": [float(str(v)) for v in row],
                "class": int(np.argmax(p)),
                "label": labels[int(np.argmax(p))],
                "probabilities": [float(v) for v in p],
            }
            for row, p in zip(rows, proba)
        ],
    }
    (HERE / "samples.json").write_text(json.dumps(samples, indent=1) + "\n")
    example = {"features": samples["rows"][0]["features"]}
    (HERE / "example_request.json").write_text(json.dumps(example) + "\n")
    print(f"accuracy={accuracy:.4f} labels={labels}")


if __name__ == "__main__":
    main()
