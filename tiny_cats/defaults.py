"""Where the bundled default models live, and how a ``--model`` argument is resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_CLASSIFIER = PRETRAINED_DIR / "classifier"
DEFAULT_GENERATOR = PRETRAINED_DIR / "generator"


def resolve_model(model: Optional[str], default: Path) -> str:
    """A local folder or Hub repo id given by the user, else the bundled model (which must exist)."""
    if model:
        return model
    if not (default / "config.json").exists() and not (default / "model_index.json").exists():
        raise FileNotFoundError(f"bundled model missing at {default}; reinstall tiny-cats or pass --model")
    return str(default)
