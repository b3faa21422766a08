"""Evidence snapshots, content-addressed: a file's name is its SHA-256, which is also recorded on
the violation, so anyone holding the alert can check that the picture is the one the detector
saw. Files are written once (atomically) and never modified."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from vigil.errors import ConfigurationError
from vigil.settings import Settings

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
# Event clips are stored as WebM (VP8), named <sha256>.webm, in the same fan-out directories.
CLIP_SUFFIX = ".webm"


class EvidenceStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256_PATTERN.fullmatch(sha256):
            raise ValueError("evidence ids are 64 lowercase hex characters (a SHA-256)")
        # Two levels of fan-out keep directories small with millions of snapshots.
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def put(self, jpeg: bytes) -> str:
        """Store a JPEG and return its SHA-256; storing the same bytes twice is a no-op."""
        return self._put(jpeg, self.path)

    def clip_path(self, sha256: str) -> Path:
        """Where an event clip (WebM) lives: beside the snapshots, under the same retention."""
        return self.path(sha256).with_suffix(CLIP_SUFFIX)

    def put_clip(self, webm: bytes) -> str:
        """Store an event clip (WebM) and return its SHA-256, as `put` does for a JPEG."""
        return self._put(webm, self.clip_path)

    def get_clip(self, sha256: str) -> bytes | None:
        try:
            return self.clip_path(sha256).read_bytes()
        except FileNotFoundError:
            return None

    def _put(self, data: bytes, path: Callable[[str], Path]) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = path(sha)
        if target.exists():
            # Stored again: refresh its mtime, which retention (ingest/retention.py) reads as its
            # age. The caller is about to refer to it from a new alert; an old mtime would let a
            # retention pass delete it before that alert is committed.
            with contextlib.suppress(OSError):  # a read-only store (the API's mount) still reads
                os.utime(target)
            return sha
        target.parent.mkdir(exist_ok=True)
        # Write-then-rename: a reader (the API) never sees half a file, a crash leaves none.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None


def evidence_store(settings: Settings) -> EvidenceStore:
    if settings.evidence_dir is None:
        raise ConfigurationError("VIGIL_EVIDENCE_DIR must be set (where evidence snapshots are kept)")
    return EvidenceStore(settings.evidence_dir)
