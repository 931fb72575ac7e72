"""Hand-maintained data files for enrichment, read once at start from ``config/``.

The project is always installed editable, so ``config/`` sits two levels above this
package. Files are JSON (stdlib only); keys starting with ``_`` are comments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


def load(name: str, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """Parse ``config_dir/name``; raises ``OSError``/``ValueError`` with the file name."""
    path = config_dir / name
    with path.open("rb") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a JSON object")
    return data
