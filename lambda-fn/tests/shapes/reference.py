"""Reference answers for the models-as-exported tests (lambda-fn/tests/shapes.rs).

Real pretrained models that pip packages ship, each run by onnxruntime exactly as exported
on seeded inputs of several shapes and batch sizes. Writes OUTDIR/reference.json: per model
its cases, each a request in the function's protocol and onnxruntime's outputs.

    python reference.py MODEL_FILE… OUTDIR

(the model files as `cargo xtask test` fetched them, all in one directory).
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort

DATA, OUT = os.path.dirname(sys.argv[1]), sys.argv[-1]

# name, file under DATA, and per case: the inputs onnxruntime gets (requests send the same
# values, except the inputs the manifest fixes to a constant, listed in `fixed`).
rng = np.random.default_rng(20261207)


def image(n, h, w, scale=1.0):
    return (rng.random((n, 3, h, w), dtype=np.float32) * scale).astype(np.float32)


def audio(n, samples):
    return (rng.random((n, samples), dtype=np.float32) * 2 - 1).astype(np.float32)


MODELS = [
    # tf2onnx (jax2tf) export, batch `unk__214`: file-type classifier on 2,048 bytes.
    ("magika", "magika-standard-v3-3.onnx", [
        {"bytes": rng.integers(0, 257, (1, 2048), dtype=np.int32)},
        {"bytes": rng.integers(0, 257, (3, 2048), dtype=np.int32)},
    ], {}),
    # tf2onnx export, batch `unk__749`: Spotify's note transcription on 2 s of audio.
    ("basic-pitch", "basic-pitch-nmp.onnx", [
        {"serving_default_input_2:0": (rng.random((1, 43844, 1), dtype=np.float32) * 2 - 1)},
        {"serving_default_input_2:0": (rng.random((2, 43844, 1), dtype=np.float32) * 2 - 1)},
    ], {}),
    # tf2onnx export, batch `unk__653`, NHWC: Yahoo's open_nsfw ResNet (BGR, mean removed).
    ("opennsfw", "open-nsfw.onnx", [
        {"input:0": (rng.random((1, 224, 224, 3), dtype=np.float32) * 255 - 117).astype(np.float32)},
    ], {}),
    # YOLO face detector, [batch, 3, height, width].
    ("faceghost", "faceghost-v0-1.onnx", [
        {"images": image(1, 96, 128)},
        {"images": image(1, 160, 224)},
        {"images": image(2, 96, 128)},
    ], {}),
    # YOLOv8n detector, [batch, 3, height, width], outputs sized by an expression of both.
    ("nudenet", "nudenet-320n.onnx", [
        {"images": image(1, 128, 160)},
        {"images": image(1, 96, 96)},
    ], {}),
    # PaddleOCR v4 text detector, dynamic batch, height and width: three sizes.
    ("ocr-det", "ch_PP-OCRv4_det_infer.onnx", [
        {"x": image(1, 96, 128)},
        {"x": image(1, 160, 224)},
        {"x": image(1, 64, 320)},
        {"x": image(2, 96, 128)},
    ], {}),
    # PaddleOCR v4 recognizer: height 48, any width.
    ("ocr-rec", "ch_PP-OCRv4_rec_infer.onnx", [
        {"x": image(1, 48, 160)},
        {"x": image(1, 48, 320)},
        {"x": image(2, 48, 160)},
    ], {}),
    # PaddleOCR direction classifier, batch stored as -1, height and width unnamed.
    ("ocr-cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", [
        {"x": image(1, 48, 192)},
        {"x": image(3, 48, 192)},
    ], {}),
    # silero VAD: an If on the sample-rate input, fixed to 16 kHz in the manifest.
    ("silero-vad", "silero_vad.onnx", [
        {"input": audio(1, 512), "state": np.zeros((2, 1, 128), np.float32), "sr": np.array(16000, np.int64)},
        {"input": audio(1, 512), "state": (rng.random((2, 1, 128), dtype=np.float32) * 0.1).astype(np.float32), "sr": np.array(16000, np.int64)},
    ], {"sr": 16000}),
]

models = []
for name, file, cases, fixed in MODELS:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(DATA, file), options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    done = []
    for inputs in cases:
        answer = session.run(outputs, inputs)
        done.append({
            "request": {
                "model": name,
                "inputs": {k: v.tolist() for k, v in inputs.items() if k not in fixed},
            },
            "outputs": {
                o: {"shape": list(a.shape), "values": a.astype(np.float64).ravel().tolist()}
                for o, a in zip(outputs, answer)
            },
        })
    models.append({"name": name, "file": file, "fixed": fixed, "cases": done})

with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump({"models": models}, f)
