from __future__ import annotations

import os

# Real-model tests read package-shipped weights only: never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGPRESS_QUIET", "1")
