"""Which models the web app's Train tab accepts, checked at Start so a bad choice is refused before it is queued.

The app serves people who are not the server's operator, so its Model field must not load (or probe) any path on
the server: it takes the bundled model, a hub id (``owner/name``), or a folder under the data dir's ``models`` or
``base_models`` (plus the roots in ``FINETUNER_ALLOW_MODEL_PATHS``). A path outside them gets one message whether or
not it exists. The CLI (``python -m finetuner``) runs on the operator's own machine and is not restricted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from finetuner import hub_access as hub
from finetuner.config import BUNDLED_NAMES, DEFAULT_MODEL
from finetuner.e5_convert import E5_FILES  # numpy only: the engine converts these bundled encoders offline

ENV_ROOTS = "FINETUNER_ALLOW_MODEL_PATHS"  # os.pathsep-separated extra folders, e.g. /srv/models:/other
DATA_DIR_ROOTS = ("models", "base_models")  # trained models, and base models an operator copied in
# Hugging Face's repo id rule: owner/name of letters, digits, "-", "_", "."; no "--" or "..", at most 96 each
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", re.ASCII)
_BUNDLED = {name.lower() for name in BUNDLED_NAMES}


class ModelChoiceError(ValueError):
    """A Model field value the app will not train on, with a message for the person at the form."""


def roots_from_env(value: str | None = None) -> tuple[Path, ...]:
    """The extra model roots of FINETUNER_ALLOW_MODEL_PATHS (empty entries skipped)."""
    value = os.environ.get(ENV_ROOTS, "") if value is None else value
    return tuple(Path(part).expanduser() for part in value.split(os.pathsep) if part.strip())


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name and "--" not in name and not name.endswith(".")


@dataclass(frozen=True)
class ModelPolicy:
    """The app's model rule: `check(name)` returns what to store in the job's config, or raises ModelChoiceError.

    >>> ModelPolicy(Path("/srv/data")).check("all-MiniLM-L6-v2")
    'all-MiniLM-L6-v2'
    """

    data_dir: Path
    extra_roots: tuple[Path, ...] = ()
    hub_cache: Path | None = None  # None: huggingface_hub's default cache (HF_HUB_CACHE / HF_HOME)

    @property
    def roots(self) -> tuple[Path, ...]:
        return tuple(self.data_dir / sub for sub in DATA_DIR_ROOTS) + tuple(self.extra_roots)

    def refusal(self) -> str:
        """The one message for any name outside the rule (the same whether or not such a path exists)."""
        folders = " or ".join(str(root) for root in self.roots)
        bundled = ", ".join([DEFAULT_MODEL, *E5_FILES])
        return f"model must be a bundled model ({bundled}), a hub id (owner/name) or a folder under {folders}"

    def check(self, name: str | None) -> str:
        """Validate a Model field value at once (no download) and return the name the worker should load.

        Bundled names map to DEFAULT_MODEL; a folder comes back absolute (relative names are taken under the data
        dir, where the worker would not look); a hub id must be cached when this machine is offline.
        """
        name = (name or "").strip()
        if name.lower() in _BUNDLED:
            return DEFAULT_MODEL
        if name.lower() in E5_FILES:
            return name.lower()
        if is_hub_id(name) and not self._inside((self.data_dir / name).resolve()):
            return self._check_hub_id(name)
        return str(self._check_folder(name))  # "models/3" is the data dir's folder, not a hub id

    def _inside(self, path: Path) -> bool:
        return any(path.is_relative_to(root.resolve()) for root in self.roots)

    def _check_folder(self, name: str) -> Path:
        if "\0" in name:
            raise ModelChoiceError(self.refusal())
        path = Path(name).expanduser()
        # resolve() follows symlinks and "..", so a link under models/ pointing elsewhere is outside too
        path = (path if path.is_absolute() else self.data_dir / path).resolve()
        if not self._inside(path):
            raise ModelChoiceError(self.refusal())
        if not path.is_dir():
            raise ModelChoiceError(f"model folder {path} does not exist")
        if not (path / "config.json").is_file():
            raise ModelChoiceError(f"{path} has no config.json: it is not a Hugging Face model folder")
        return path

    def _check_hub_id(self, name: str) -> str:
        if hub.in_hub_cache(name, self.hub_cache):
            return name
        if hub.offline_forced() or not hub.hub_reachable():
            raise ModelChoiceError(
                f"this machine is offline and {name} is not downloaded; choose a bundled model "
                f"({', '.join([DEFAULT_MODEL, *E5_FILES])}) or a model folder under {self.roots[0]}"
            )
        return name


def model_policy(settings) -> ModelPolicy:
    """The policy for the app's settings (`ui.common.Settings`: data_dir and model_roots)."""
    return ModelPolicy(Path(settings.data_dir), tuple(getattr(settings, "model_roots", ())))
