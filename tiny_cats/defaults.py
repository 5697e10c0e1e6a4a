"""Where the bundled default models live, and how a ``--classifier`` / ``--generator`` argument is resolved."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Dict, Optional

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_CLASSIFIER = PRETRAINED_DIR / "classifier"
DEFAULT_GENERATOR = PRETRAINED_DIR / "generator"


def resolve_model(model: Optional[str], default: Path, required: bool = True) -> Optional[str]:
    """The local folder or Hub repo id the user gave, else the bundled model at ``default``.

    When the bundled model is missing: ``FileNotFoundError`` naming the option that replaces it
    (``--classifier`` or ``--generator``, the bundled folder's name), or ``None`` if not ``required``.
    """
    if model:
        return str(model)
    if (default / "config.json").is_file() or (default / "model_index.json").is_file():
        return str(default)
    if not required:
        return None
    raise FileNotFoundError(f"no bundled model at {default}; reinstall tiny-cats or pass --{default.name} DIR_OR_REPO")


def pipeline_defaults(pipe) -> Dict[str, Any]:
    """The sampling settings a plain ``pipe(breed)`` call uses (its ``__call__`` signature's defaults)."""
    parameters = inspect.signature(pipe.__call__).parameters
    return {name: parameters[name].default for name in ("num_inference_steps", "guidance_scale", "guidance_interval")
            if name in parameters}
