"""A saved model folder leaves the machine: a download zip built once when the model is saved, a push to the Hub.

Torch-free (the web process zips and pushes); whether the Hub is reachable is `finetuner.hub_access`'s question.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from finetuner.hub_access import offline_forced

META_FILE = "finetuner.json"  # = modeling.META_FILE; importing modeling would bring torch along

SKIP_DIRS = {"checkpoint", ".cache"}  # resume state and caches: not part of a model
# Weights are dense floats: deflating them saved a few per cent and took the 25 s a zip used to take.
STORED_SUFFIXES = {".safetensors", ".bin", ".pt"}


class PushError(RuntimeError):
    """A push that cannot start or did not finish, with a message saying what to do."""


def zip_path(folder: str | Path) -> Path:
    """Where the download of a model folder lives: beside it, named for it (``models/7`` -> ``models/finetuner-model-7.zip``)."""
    folder = Path(folder)
    return folder.parent / f"finetuner-model-{folder.name}.zip"


def model_files(folder: str | Path) -> list[Path]:
    """The files a download or a push carries, relative to the folder (no checkpoint, no zip)."""
    folder = Path(folder)
    return sorted(
        f.relative_to(folder)
        for f in folder.rglob("*")
        if f.is_file() and not SKIP_DIRS & set(f.relative_to(folder).parts[:-1]) and f.suffix != ".zip"
    )


def write_zip(folder: str | Path, dest: str | Path | None = None) -> Path:
    """Zip a model folder (weights stored, text deflated) and return the zip; written whole or not at all.

    >>> write_zip("data/models/7")  # doctest: +SKIP
    PosixPath('data/models/finetuner-model-7.zip')
    """
    folder = Path(folder)
    if not (folder / META_FILE).is_file():
        raise ValueError(f"{folder} is not a Finetuner model folder (no {META_FILE})")
    dest = Path(dest) if dest else zip_path(folder)
    part = dest.with_name(dest.name + ".part")  # a reader never sees a half-written zip
    with zipfile.ZipFile(part, "w") as archive:
        for rel in model_files(folder):
            stored = rel.suffix in STORED_SUFFIXES
            archive.write(
                folder / rel, rel.as_posix(), zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            )
    os.replace(part, dest)
    return dest


def ready_zip(folder: str | Path) -> Path:
    """The folder's zip, built now only when it is missing or older than a file in the folder."""
    folder, dest = Path(folder), zip_path(folder)
    newest = max((folder / rel).stat().st_mtime_ns for rel in model_files(folder))
    if dest.is_file() and dest.stat().st_mtime_ns >= newest:
        return dest
    return write_zip(folder, dest)


def push(
    folder: str | Path, repo_id: str, *, token: str | None = None, private: bool = True, api=None
) -> str:
    """Upload a model folder to the Hugging Face Hub as a model repository (created private if it does not exist).

    Args:
        folder: a saved model folder (with its README.md model card).
        repo_id: ``user/name`` or ``org/name``.
        token: a token with write access; default ``HF_TOKEN`` (or the token ``hf auth login`` saved).
        private: create the repository private (an existing one keeps its visibility).
        api: an ``HfApi`` (tests pass one that records the calls).

    Returns:
        The repository's URL.

    >>> push("data/models/7", "me/sst2-minilm")  # doctest: +SKIP
    'https://huggingface.co/me/sst2-minilm'
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    from huggingface_hub.utils import validate_repo_id

    folder = Path(folder)
    if not (folder / META_FILE).is_file():
        raise PushError(f"{folder} is not a Finetuner model folder (no {META_FILE})")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PushError(f"repository {repo_id!r} is not a Hub id like 'user/name': {exc}") from exc
    if "/" not in repo_id:
        raise PushError(f"repository {repo_id!r}: give the owner too, as 'user/name'")
    if offline_forced():
        raise PushError("HF_HUB_OFFLINE=1 is set: this process may not reach the Hub; unset it to push")
    token = token or get_token()
    if not token:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens), or run `hf auth login`"
        )
    api = api or HfApi(token=token)
    try:
        api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            token=token,
            commit_message=f"Upload {folder.name} from Finetuner",
            allow_patterns=[rel.as_posix() for rel in model_files(folder)],
        )
    except HfHubHTTPError as exc:  # the Hub answered: a bad token, a name taken by someone else...
        raise PushError(f"the Hub refused the push to {repo_id}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - no answer at all (no network, DNS, proxy): one readable message
        raise PushError(
            f"cannot reach the Hub at {api.endpoint} ({type(exc).__name__}: {exc}); check the network"
        ) from exc
    return f"https://huggingface.co/{repo_id}"
