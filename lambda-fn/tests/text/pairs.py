"""Text-pair models and their reference answers for the pair, rerank and question-answering
tests. Run by `cargo xtask test` (xtask/src/test_data.rs):

    python pairs.py TOKENIZER.json OUTDIR

No pip package ships a small question-answering or cross-encoder ONNX model, so this builds
BERT-shaped graphs over the real MiniLM (BERT uncased) tokenizer's vocabulary: token,
position and segment embeddings, one masked self-attention layer and a feed-forward layer
with residuals, then a head — start/end logits per token (question answering), one logit
from [CLS] (cross-encoder rerank), three classes from [CLS] (pair classification). Weights
are seeded noise except for a few directions that make the QA model point at something
checkable: four-digit years carry a feature the start and end logits read, and [CLS] a
weaker one, so a context with a year answers the year and one without has "no answer" as
its best (with handle_impossible_answer).

The reference answers are computed as Python users get them: Hugging Face `tokenizers`
(pair encoding, `only_second` truncation with a stride and overflowing windows, character
offsets) + onnxruntime, and the span choice of the Hugging Face question-answering pipeline
(transformers' `select_starts_ends` / `decode_spans` and `align_to_words`), written out here.
"""

import json
import os
import re
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

HIDDEN = 32
POSITIONS = 512

QA = {"max_length": 64, "stride": 24, "max_answer_length": 15}
RERANK_MAX_LENGTH = 64
LABELS = ["contradiction", "neutral", "entailment"]

# The AWS blog's request (its context, shortened).
CAR_QUESTION = "When was the car invented?"
CAR_CONTEXT = (
    "Cars came into global use during the 20th century, and developed economies depend on "
    "them. The year 1886 is regarded as the birth year of the modern car when German "
    "inventor Karl Benz patented his Benz Patent-Motorwagen. Cars became widely available "
    "in the early 20th century. One of the first cars accessible to the masses was the "
    "Model T, built by the Ford Motor Company."
)
# Longer than one window (64 tokens, stride 24): the only year is in the second.
LONG_CONTEXT = (
    "The old harbour town grew slowly along the river, first as a fishing village and then "
    "as a market where farmers from the hills sold wool, cheese and timber to merchants who "
    "came up the estuary with the tide. The stone bridge that crosses the river at the centre of the town was finished in 1742 "
    "after a flood had carried away the wooden one, and it has stood ever since."
)
UNICODE_QUESTION = "Quand le musée de 東京 a-t-il ouvert ?"
UNICODE_CONTEXT = (
    "Ünïcödé café ☕ naïve façade — le musée de 東京 🎨 a ouvert en 1998 🎉 après "
    "des années de travaux, près de la gare 駅 😀."
)
NO_ANSWER_CONTEXT = "The weather was mild and the market was busy with people buying bread."

RERANK_QUERY = "how to bake bread at home"
RERANK_DOCUMENTS = [
    "Mix flour, water and a starter, let the dough rise overnight, then bake it hot.",
    "Equities slid after the central bank signalled more rate rises.",
    "Two puppies chased a ball across the garden all afternoon.",
    "Bakers knead dough and bake loaves in a hot oven at home or in shops.",
    "Rust is a systems programming language focused on safety. 東京 🎉",
]
PAIRS = [
    ["A man is playing a guitar.", "A person plays an instrument."],
    ["A man is playing a guitar.", "Nobody is making any music."],
    ["The café opened in 1998.", "Le café a ouvert en 1998 ☕."],
]


def trunk(nodes, inits, rng, vocab, years, cls_id):
    """Embeddings + one attention layer + a feed-forward layer; returns the hidden output."""
    word = rng.normal(0, 0.02, (vocab, HIDDEN)).astype(np.float32)
    word[:, 1] = rng.normal(0, 1, vocab)
    word[:, 2] = rng.normal(0, 1, vocab)
    word[years, 0] = 1.0
    word[cls_id, 0] = 0.5

    def init(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))

    init("word", word)
    init("position", rng.normal(0, 0.02, (POSITIONS, HIDDEN)).astype(np.float32))
    init("segment", rng.normal(0, 0.02, (2, HIDDEN)).astype(np.float32))
    for name, shape, std in [
        ("wq", (HIDDEN, HIDDEN), 0.1),
        ("wk", (HIDDEN, HIDDEN), 0.1),
        ("wv", (HIDDEN, HIDDEN), 0.1),
        ("wo", (HIDDEN, HIDDEN), 0.02),
        ("w1", (HIDDEN, 4 * HIDDEN), 0.1),
        ("w2", (4 * HIDDEN, HIDDEN), 0.02),
    ]:
        init(name, rng.normal(0, std, shape).astype(np.float32))
    init("zero", np.array([0], dtype=np.int64))
    init("one", np.array([1], dtype=np.int64))
    init("one_f", np.array(1.0, dtype=np.float32))
    init("neg", np.array(-10000.0, dtype=np.float32))
    init("scale", np.array(1.0 / np.sqrt(HIDDEN), dtype=np.float32))
    n = helper.make_node
    nodes += [
        n("Gather", ["word", "input_ids"], ["w_emb"]),
        n("Gather", ["segment", "token_type_ids"], ["t_emb"]),
        n("Shape", ["input_ids"], ["ids_shape"]),
        n("Gather", ["ids_shape", "one"], ["seq_len"], axis=0),
        n("Slice", ["position", "zero", "seq_len", "zero"], ["p_emb"]),
        n("Add", ["w_emb", "t_emb"], ["wt"]),
        n("Add", ["wt", "p_emb"], ["x"]),
        # Attention, padding masked: (1 - mask) * -10000 on the keys.
        n("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        n("Sub", ["one_f", "mask_f"], ["unmask"]),
        n("Mul", ["unmask", "neg"], ["bias2"]),
        n("Unsqueeze", ["bias2", "one"], ["bias"]),
        n("MatMul", ["x", "wq"], ["q"]),
        n("MatMul", ["x", "wk"], ["k"]),
        n("MatMul", ["x", "wv"], ["v"]),
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        n("MatMul", ["q", "kt"], ["qk"]),
        n("Mul", ["qk", "scale"], ["qk_scaled"]),
        n("Add", ["qk_scaled", "bias"], ["scores"]),
        n("Softmax", ["scores"], ["attn"], axis=-1),
        n("MatMul", ["attn", "v"], ["ctx"]),
        n("MatMul", ["ctx", "wo"], ["attn_out"]),
        n("Add", ["x", "attn_out"], ["x2"]),
        n("MatMul", ["x2", "w1"], ["h1"]),
        n("Relu", ["h1"], ["h1r"]),
        n("MatMul", ["h1r", "w2"], ["h2"]),
        n("Add", ["x2", "h2"], ["hidden"]),
    ]
    return "hidden"


def build(path, head, seed, vocab, years, cls_id, bias=None):
    rng = np.random.RandomState(seed)
    nodes, inits = [], []
    hidden = trunk(nodes, inits, rng, vocab, years, cls_id)
    n = helper.make_node
    sym = ["batch", "sequence"]
    if head == "qa":
        w = rng.normal(0, 0.3, (HIDDEN, 2)).astype(np.float32)
        w[0, :] = 8.0  # the year feature
        w[1, 0], w[2, 1] = 1.0, 1.0  # per-token noise, different for start and end
        inits.append(numpy_helper.from_array(w, "w_qa"))
        inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "i0"))
        inits.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "i1"))
        nodes += [
            n("MatMul", [hidden, "w_qa"], ["qa"]),
            n("Gather", ["qa", "i0"], ["start_logits"], axis=2),
            n("Gather", ["qa", "i1"], ["end_logits"], axis=2),
        ]
        outputs = [
            helper.make_tensor_value_info("start_logits", TensorProto.FLOAT, sym),
            helper.make_tensor_value_info("end_logits", TensorProto.FLOAT, sym),
        ]
    else:
        classes = 1 if head == "rerank" else len(LABELS)
        # [CLS]'s own embedding is the same in every pair: the head reads the other
        # dimensions, where attention brought in the pair's tokens.
        w = rng.normal(0, 10.0, (HIDDEN, classes)).astype(np.float32)
        w[:3, :] = 0.0
        b = np.zeros(classes, dtype=np.float32) if bias is None else bias.astype(np.float32)
        inits.append(numpy_helper.from_array(w, "w_cls"))
        inits.append(numpy_helper.from_array(b, "b_cls"))
        inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "i0"))
        nodes += [
            n("Gather", [hidden, "i0"], ["cls"], axis=1),
            n("MatMul", ["cls", "w_cls"], ["cls_logits"]),
            n("Add", ["cls_logits", "b_cls"], ["logits"]),
        ]
        outputs = [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])
        ]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, sym)
        for name in ["input_ids", "attention_mask", "token_type_ids"]
    ]
    graph = helper.make_graph(nodes, f"bert-shaped-{head}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    write(path, model.SerializeToString())


def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def run(session, enc):
    feeds = {
        "input_ids": np.array([enc.ids], dtype=np.int64),
        "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
        "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
    }
    return session.run(None, feeds)


# --- The Hugging Face question-answering pipeline's span choice (transformers 4.x,
# pipelines/question_answering.py), written out.


def decode_spans(start, end, topk, max_answer_len, undesired_tokens):
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    desired_spans = np.isin(starts, undesired_tokens.nonzero()) & np.isin(
        ends, undesired_tokens.nonzero()
    )
    starts = starts[desired_spans]
    ends = ends[desired_spans]
    scores = candidates[0, starts, ends]
    return starts, ends, scores


def select_starts_ends(start, end, p_mask, attention_mask, min_null_score, top_k,
                       handle_impossible_answer, max_answer_len):
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def answer(session, tokenizer, question, context, top_k, handle_impossible_answer):
    enc = tokenizer.encode(question, context)
    windows = [enc] + list(enc.overflowing)
    cls_id = tokenizer.token_to_id("[CLS]")
    min_null_score = 1000000
    answers = []
    for w, span in enumerate(windows):
        # p_mask: 1 where the answer cannot be (the question, special tokens); [CLS] kept.
        p_mask = np.array([[tok != 1 for tok in span.sequence_ids]])
        ids = np.array(span.ids)
        p_mask[0][ids == cls_id] = 0
        start, end = run(session, span)
        attention = np.array([span.attention_mask])
        starts, ends, scores, min_null_score = select_starts_ends(
            start, end, p_mask.astype(int), attention, min_null_score, top_k,
            handle_impossible_answer, QA["max_answer_length"],
        )
        for s, e, score in zip(starts, ends, scores):
            s, e = int(s), int(e)
            try:
                start_word = span.token_to_word(s)
                end_word = span.token_to_word(e)
                start_index = span.word_to_chars(start_word, sequence_index=1)[0]
                end_index = span.word_to_chars(end_word, sequence_index=1)[1]
            except Exception:
                start_index = span.offsets[s][0]
                end_index = span.offsets[e][1]
            answers.append({
                "score": float(score),
                "start": start_index,
                "end": end_index,
                "answer": context[start_index:end_index],
                "window": w,
            })
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": "", "window": 0})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    return {"windows": len(windows), "answers": answers}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def main():
    tokenizer_path, out = sys.argv[1:3]  # OUTDIR last, as xtask passes it
    os.makedirs(out, exist_ok=True)
    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_padding()
    vocab = tokenizer.get_vocab()
    years = sorted(i for t, i in vocab.items() if re.fullmatch(r"1[0-9]{3}|20[0-9]{2}", t))
    cls_id = tokenizer.token_to_id("[CLS]")
    size = tokenizer.get_vocab_size()
    files = {}
    session = {}
    for seed, head in enumerate(["qa", "rerank", "pairs"]):
        files[head] = os.path.join(out, f"bert-shaped-{head}.onnx")
        build(files[head], head, 20261204 + seed, size, years, cls_id)
        session[head] = ort.InferenceSession(files[head], providers=["CPUExecutionProvider"])
    # [CLS] carries the same large offset into every pair's logits: centred on the test
    # pairs, the scores and classes spread out instead of saturating.
    tokenizer.enable_truncation(RERANK_MAX_LENGTH, strategy="longest_first")
    for head, pairs in [("rerank", [(RERANK_QUERY, d) for d in RERANK_DOCUMENTS]), ("pairs", PAIRS)]:
        logits = np.array([run(session[head], tokenizer.encode(a, b))[0][0] for a, b in pairs])
        build(files[head], head, 20261204 + ["qa", "rerank", "pairs"].index(head), size, years,
              cls_id, bias=-logits.mean(axis=0))
        session[head] = ort.InferenceSession(files[head], providers=["CPUExecutionProvider"])

    tokenizer.enable_truncation(QA["max_length"], stride=QA["stride"], strategy="only_second")
    cases = []
    for name, question, context, top_k, impossible in [
        ("car", CAR_QUESTION, CAR_CONTEXT, 1, False),
        ("car top 3", CAR_QUESTION, CAR_CONTEXT, 3, False),
        ("long", "When was the bridge finished?", LONG_CONTEXT, 1, False),
        ("unicode", UNICODE_QUESTION, UNICODE_CONTEXT, 1, False),
        ("unicode top 5", UNICODE_QUESTION, UNICODE_CONTEXT, 5, False),
        ("no answer", "When did it rain?", NO_ANSWER_CONTEXT, 1, True),
        ("car, impossible allowed", CAR_QUESTION, CAR_CONTEXT, 2, True),
    ]:
        result = answer(session["qa"], tokenizer, question, context, top_k, impossible)
        cases.append({
            "name": name,
            "question": question,
            "context": context,
            "top_k": top_k,
            "handle_impossible_answer": impossible,
            **result,
        })

    tokenizer.enable_truncation(RERANK_MAX_LENGTH, strategy="longest_first")
    logits = [float(run(session["rerank"], tokenizer.encode(RERANK_QUERY, d))[0][0][0])
              for d in RERANK_DOCUMENTS]
    scores = [float(sigmoid(x)) for x in logits]
    ranking = sorted(range(len(scores)), key=lambda i: -scores[i])
    probabilities = []
    for a, b in PAIRS:
        row = run(session["pairs"], tokenizer.encode(a, b))[0][0].astype(np.float64)
        e = np.exp(row - row.max())
        probabilities.append((e / e.sum()).tolist())

    reference = {
        "files": {h: os.path.basename(p) for h, p in files.items()},
        "qa": {**QA, "cases": cases},
        "rerank": {
            "max_length": RERANK_MAX_LENGTH,
            "query": RERANK_QUERY,
            "documents": RERANK_DOCUMENTS,
            "scores": scores,
            "ranking": ranking,
        },
        "pairs": {
            "labels": LABELS,
            "pairs": PAIRS,
            "probabilities": probabilities,
            "predicted": [LABELS[int(np.argmax(p))] for p in probabilities],
        },
    }
    write(os.path.join(out, "reference.json"), json.dumps(reference, indent=1).encode())


if __name__ == "__main__":
    main()
