"""Fixtures shared by the whole suite."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
if str(ROOT) not in sys.path:  # lets tests import the `tests.*` helper packages (kubesim, pg)
    sys.path.insert(0, str(ROOT))
