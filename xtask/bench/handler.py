"""The benchmarks' Python baseline: what users run today on Lambda.

onnxruntime + numpy (and tokenizers for text) imported and the InferenceSession built at
module level, outside the handler; run by the official runtime interface client
(`python -m awslambdaric handler.handler`). It answers the same request shapes as the Rust
function, so `cargo xtask bench` sends both sides the same bytes and checks that the answers
agree before it times anything.

Environment: BENCH_KIND (tabular | text | image), MODEL_PATH, TOKENIZER_PATH (text),
ORT_THREADS (intra-op threads), TEXT_OUTPUT (the token-embedding output to pool).
"""

import json
import os
import sys
import time

_started = time.perf_counter()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

_imported = time.perf_counter()

KIND = os.environ["BENCH_KIND"]
MAX_LENGTH = 128

_options = ort.SessionOptions()
_options.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "1"))
_options.inter_op_num_threads = 1
SESSION = ort.InferenceSession(
    os.environ["MODEL_PATH"], _options, providers=["CPUExecutionProvider"]
)
INPUTS = SESSION.get_inputs()
OUTPUTS = [o.name for o in SESSION.get_outputs()]

TOKENIZER = None
if KIND == "text":
    from tokenizers import Tokenizer

    TOKENIZER = Tokenizer.from_file(os.environ["TOKENIZER_PATH"])
    TOKENIZER.enable_truncation(max_length=MAX_LENGTH)
    TOKENIZER.enable_padding(pad_id=0, pad_token="[PAD]")
    TEXT_OUTPUT = os.environ["TEXT_OUTPUT"]

_ready = time.perf_counter()
# One line for the benchmark: where this process's init time went.
print(
    json.dumps(
        {
            "bench_init": True,
            "import_ms": (_imported - _started) * 1000,
            "session_ms": (_ready - _imported) * 1000,
        }
    ),
    file=sys.stderr,
    flush=True,
)


def _tabular(event):
    rows = np.asarray(event["features"], dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    values = SESSION.run(None, {INPUTS[0].name: rows})
    return {"outputs": {n: v.tolist() for n, v in zip(OUTPUTS, values)}}


def _image(event):
    feeds = {i.name: np.asarray(event["inputs"][i.name], dtype=np.float32) for i in INPUTS}
    values = SESSION.run(None, feeds)
    return {"outputs": {n: v.tolist() for n, v in zip(OUTPUTS, values)}}


def _text(event):
    texts = event["text"]
    if isinstance(texts, str):
        texts = [texts]
    encodings = TOKENIZER.encode_batch(texts)
    ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in INPUTS):
        feeds["token_type_ids"] = np.zeros_like(ids)
    (tokens,) = SESSION.run([TEXT_OUTPUT], feeds)
    weights = mask[:, :, None].astype(np.float32)
    pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return {
        "embeddings": pooled.tolist(),
        "tokens": [int(m.sum()) for m in mask],
    }


_HANDLERS = {"tabular": _tabular, "image": _image, "text": _text}


def handler(event, context):
    return _HANDLERS[KIND](event)
