"""Trains the classical-ML test models and records onnxruntime's answers.

    python train.py OUT_DIR

Every model is trained on a data set that ships with scikit-learn (no downloads), with fixed
seeds, exported to ONNX the way users export them (skl2onnx for scikit-learn, onnxmltools for
XGBoost and LightGBM), and run with onnxruntime on held-out rows: three single rows and one
batch of eight. OUT_DIR gets <name>.onnx per model and expected.json with the rows and
onnxruntime's outputs, which the Rust tests compare with the function's answers.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC, SVR
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from lightgbm import LGBMClassifier, LGBMRegressor
from xgboost import XGBClassifier, XGBRegressor

SEED = 0


def _bools_as_ints(add_node):
    """skl2onnx 1.20 passes HistGradientBoosting's missing-value flags as numpy booleans,
    which onnx 1.23 rejects for an ints attribute; they are 0/1 by the specification."""

    def wrapper(self, *args, **attrs):
        for key, value in attrs.items():
            if isinstance(value, np.ndarray) and value.dtype == bool:
                attrs[key] = value.astype(np.int64)
            elif isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
                attrs[key] = [int(v) for v in value]
        return add_node(self, *args, **attrs)

    return wrapper


from skl2onnx.common._container import ModelComponentContainer  # noqa: E402

ModelComponentContainer.add_node = _bools_as_ints(ModelComponentContainer.add_node)
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

# XGBoost and LightGBM models inside skl2onnx: onnxmltools' converters, registered the way
# the skl2onnx documentation shows.
update_registered_converter(
    XGBClassifier, "XGBoostXGBClassifier",
    calculate_linear_classifier_output_shapes, convert_xgboost,
    options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
)
update_registered_converter(
    LGBMClassifier, "LightGbmLGBMClassifier",
    calculate_linear_classifier_output_shapes, convert_lightgbm,
    options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
)


def _regressor_shapes(operator):
    from skl2onnx.common.data_types import FloatTensorType as F
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = F([n, 1])


update_registered_converter(XGBRegressor, "XGBoostXGBRegressor", _regressor_shapes, convert_xgboost)
update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", _regressor_shapes, convert_lightgbm)


def data(name):
    loader = {
        "breast_cancer": load_breast_cancer,
        "iris": load_iris,
        "iris_species": load_iris,
        "diabetes": load_diabetes,
    }[name]
    x, y = loader(return_X_y=True)
    x = x.astype(np.float32)
    if name == "iris_species":
        # Trained on the species names, as people usually train: string class labels.
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    return train_test_split(x, y, test_size=0.3, random_state=SEED)


# name, data set, model, classifier?, keep ZipMap?
MODELS = [
    ("scaler-logreg", "breast_cancer", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), True, False),
    ("minmax-logreg", "iris", lambda: make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=1000)), True, False),
    ("rf-regressor", "diabetes", lambda: RandomForestRegressor(n_estimators=10, max_depth=4, random_state=SEED), False, False),
    ("gb-regressor", "diabetes", lambda: GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=SEED), False, False),
    ("gb-binary", "breast_cancer", lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=SEED), True, True),
    ("gb-multiclass", "iris", lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=SEED), True, False),
    ("hgb-classifier", "breast_cancer", lambda: HistGradientBoostingClassifier(max_iter=20, max_depth=4, random_state=SEED), True, False),
    ("svc-rbf", "iris", lambda: make_pipeline(StandardScaler(), SVC(kernel="rbf", random_state=SEED)), True, False),
    ("svc-linear", "breast_cancer", lambda: make_pipeline(StandardScaler(), SVC(kernel="linear", random_state=SEED)), True, False),
    ("svr", "diabetes", lambda: make_pipeline(StandardScaler(), SVR(kernel="rbf")), False, False),
    ("xgb-binary", "breast_cancer", lambda: XGBClassifier(n_estimators=20, max_depth=3, random_state=SEED), True, False),
    ("xgb-multiclass", "iris", lambda: XGBClassifier(n_estimators=10, max_depth=3, random_state=SEED), True, True),
    ("xgb-regressor", "diabetes", lambda: XGBRegressor(n_estimators=20, max_depth=3, random_state=SEED), False, False),
    ("lgbm-binary", "breast_cancer", lambda: LGBMClassifier(n_estimators=20, max_depth=4, random_state=SEED, verbose=-1), True, False),
    ("lgbm-regressor", "diabetes", lambda: LGBMRegressor(n_estimators=20, max_depth=4, random_state=SEED, verbose=-1), False, False),
    ("species-logreg", "iris_species", lambda: LogisticRegression(max_iter=1000), True, False),
    ("species-rf", "iris_species", lambda: RandomForestClassifier(n_estimators=10, max_depth=4, random_state=SEED), True, True),
    ("species-svc", "iris_species", lambda: SVC(kernel="rbf", random_state=SEED), True, False),
    ("species-gb", "iris_species", lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=SEED), True, False),
    ("species-scaler-logreg", "iris_species", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), True, True),
    ("mlp-external", "breast_cancer", lambda: make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=500, random_state=SEED)), True, False),
]

# Saved as large exports are: every tensor in one side file (`<name>.onnx_data`), which the
# manifest must name and packing inlines.
EXTERNAL_DATA = {"mlp-external"}


def as_list(value):
    """onnxruntime's output as JSON: ZipMap dictionaries become [rows, classes] in class order."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return [[float(np.float32(row[k])) for k in keys] for row in value]
    array = np.asarray(value)
    if array.dtype.kind in "OUS":
        return [str(v) for v in array.tolist()]
    if array.dtype.kind in "iu":
        return array.astype(np.int64).tolist()
    return array.astype(np.float64).tolist()


def string_models(out):
    """Pipelines on string columns, as people build them from DataFrames: a ColumnTransformer
    one-hot encoding a string column beside scaled numeric ones (separate inputs), unknown
    categories ignored or refused, and a LabelEncoder on strings. Cases are named inputs; a
    category onnxruntime refuses is recorded as an error."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import LabelEncoder, OneHotEncoder
    from sklearn.pipeline import Pipeline
    from skl2onnx.common.data_types import StringTensorType

    rng = np.random.RandomState(SEED)
    n = 300
    cities = ["Paris", "Lyon", "Nice", "Lille", "Saint-Étienne"]
    frame = pd.DataFrame({
        "city": rng.choice(cities, n),
        "rooms": rng.randint(1, 6, n).astype(np.float32),
        "area": rng.normal(60, 20, n).astype(np.float32),
    })
    y = ((frame.city == "Paris") | (frame.area > 75)).astype(int)
    types = [
        ("city", StringTensorType([None, 1])),
        ("rooms", FloatTensorType([None, 1])),
        ("area", FloatTensorType([None, 1])),
    ]

    def rows(cities, rooms, area):
        return {
            "city": np.array([[c] for c in cities], dtype=object),
            "rooms": np.array([[r] for r in rooms], dtype=np.float32),
            "area": np.array([[a] for a in area], dtype=np.float32),
        }

    feeds = [
        rows(["Paris"], [2], [40.0]),
        rows(["Saint-Étienne"], [4], [90.0]),
        rows(cities + ["Lyon", "Nice", "Paris"], [1, 2, 3, 4, 5, 1, 2, 3], [30, 45, 60, 75, 90, 105, 20, 50]),
        rows(["Rome", "Paris"], [3, 3], [70.0, 70.0]),  # Rome: never seen
    ]
    models = []
    for name, handle_unknown in [("city-columns", "ignore"), ("city-columns-strict", "error")]:
        columns = ColumnTransformer([
            ("city", OneHotEncoder(handle_unknown=handle_unknown), ["city"]),
            ("numbers", StandardScaler(), ["rooms", "area"]),
        ])
        pipe = Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=1000))])
        pipe.fit(frame, y)
        onx = convert_sklearn(pipe, initial_types=types, target_opset=TARGET_OPSET,
                              options={id(pipe.steps[-1][1]): {"zipmap": False}})
        models.append((name, onx, feeds))
    encoder = LabelEncoder().fit(cities)
    onx = convert_sklearn(encoder, initial_types=[("city", StringTensorType([None]))],
                          target_opset=TARGET_OPSET)
    models.append(("city-label-encoder", onx, [
        {"city": np.array(["Nice"], dtype=object)},
        {"city": np.array(["Lille", "Rome", "Saint-Étienne"], dtype=object)},
    ]))
    exported = []
    for name, onx, feeds in models:
        path = out / f"{name}.onnx"
        path.write_bytes(onx.SerializeToString())
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        output_names = [o.name for o in session.get_outputs()]
        cases = []
        for feed in feeds:
            inputs = {k: v.tolist() for k, v in feed.items()}
            try:
                results = session.run(None, feed)
            except Exception as e:  # onnxruntime refuses an unknown category
                cases.append({"inputs": inputs, "error": str(e)})
                continue
            cases.append({
                "inputs": inputs,
                "outputs": {n: as_list(r) for n, r in zip(output_names, results)},
            })
        ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
        exported.append({
            "name": name,
            "file": path.name,
            "task": "classifier",
            "zipmap": False,
            "classes": None,
            "external_data": [],
            "ops": ops,
            "cases": cases,
        })
        print(f"{name}: {', '.join(ops)}; outputs {output_names}")
    return exported


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = []
    for name, dataset, make, classifier, zipmap in MODELS:
        x_train, x_test, y_train, _ = data(dataset)
        model = make()
        model.fit(x_train, y_train)
        options = None if zipmap or not classifier else {id(model): {"zipmap": False}}
        if classifier and not zipmap and hasattr(model, "steps"):
            options = {id(model.steps[-1][1]): {"zipmap": False}}
        onx = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, x_train.shape[1]]))],
            target_opset=TARGET_OPSET,
            options=options,
        )
        path = out / f"{name}.onnx"
        external = []
        if name in EXTERNAL_DATA:
            external = [f"{name}.onnx_data"]
            # onnx moves only raw_data tensors out; skl2onnx writes float_data.
            for i, t in enumerate(onx.graph.initializer):
                onx.graph.initializer[i].CopyFrom(
                    onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t), t.name))
            onnx.save_model(onx, str(path), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=external[0], size_threshold=1024)
            assert (out / external[0]).stat().st_size > 0
        else:
            path.write_bytes(onx.SerializeToString())
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        output_names = [o.name for o in session.get_outputs()]
        cases = []
        for rows in (x_test[0:1], x_test[1:2], x_test[2:3], x_test[3:11]):
            rows = rows.astype(np.float32)
            results = session.run(None, {"input": rows})
            cases.append({
                "rows": [[float(v) for v in row] for row in rows],
                "outputs": {n: as_list(r) for n, r in zip(output_names, results)},
            })
        ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
        models.append({
            "name": name,
            "file": path.name,
            "task": "classifier" if classifier else "regressor",
            "classes": [str(c) for c in model.classes_] if dataset == "iris_species" else None,
            "external_data": external,
            "zipmap": any(n.op_type == "ZipMap" for n in onx.graph.node),
            "ops": ops,
            "cases": cases,
        })
        print(f"{name}: {', '.join(ops)}; outputs {output_names}")
    models.extend(string_models(out))
    (out / "expected.json").write_text(json.dumps({"models": models}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
