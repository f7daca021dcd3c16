"""Dataset files from their published mirrors, for ``data.download=true``.

Each file is streamed to a hidden temp file beside its destination, checked against its published
MD5 and only then renamed into place, so an interrupted download never leaves a file that looks
complete. Mirrors are tried in order; a network error moves on to the next one, an MD5 mismatch
stops with one line. ``.tar.gz`` archives are extracted into a temp directory with tarfile's
``data`` filter (leading ``/`` stripped; ``..``, links out and device files refused) and their regular
files renamed into place one by one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from http.client import HTTPException
from pathlib import Path
from typing import IO
from urllib.error import HTTPError, URLError

from lth.errors import ConfigError

log = logging.getLogger(__name__)

TIMEOUT_S = 60  # per socket operation, not per file
CHUNK = 1 << 20


def is_file_name(name: str) -> bool:
    """A plain file name: joined to a directory, it stays in that directory."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(directory: Path, md5: Mapping[str, str], mirrors: Sequence[str]) -> None:
    """Put every file named in ``md5`` into ``directory`` and extract the ``.tar.gz`` ones there.

    A file already in place with the right MD5 is not downloaded again.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"lth: data.download=true cannot create {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise ConfigError(f"lth: data.download=true cannot write into {directory}")
    for name, expected in md5.items():
        if not is_file_name(name):
            raise ConfigError(f"lth: invalid config: data.md5 key {name!r}; allowed: plain file names")
        path = directory / name
        if not (path.is_file() and md5sum(path) == expected):
            download(name, expected, mirrors, path)
        if name.endswith(".tar.gz"):
            extract(path, directory)


def download(name: str, expected: str, mirrors: Sequence[str], path: Path) -> None:
    """Download ``name`` from the first mirror that answers into ``path``, verified against ``expected``."""
    tried = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        log.info("lth: downloading %s", url)
        part = path.parent / f".{name}.{uuid.uuid4().hex[:8]}.part"  # open(): the umask sets its mode
        try:
            with open(part, "xb") as out:
                actual = _stream(url, out)
            if actual != expected:
                raise ConfigError(f"lth: download of {url} has md5 {actual}, expected {expected} (data.md5)")
            os.replace(part, path)
            return
        except (OSError, HTTPException) as exc:  # URLError, HTTPError, timeouts, a connection cut short
            tried.append(f"{url} ({_reason(exc)})")
        finally:
            part.unlink(missing_ok=True)
    raise ConfigError(
        f"lth: download of {name} failed from {', '.join(tried) or 'no mirror (data.mirrors is empty)'}; "
        f"put {name} (md5 {expected}) into {path.parent} by hand and run again"
    )


def _stream(url: str, out: IO[bytes]) -> str:
    """Copy ``url``'s body into ``out``; return its MD5. A body shorter than its Content-Length raises."""
    digest, size = hashlib.md5(), 0
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        while chunk := response.read(CHUNK):  # read(n) returns b"" when the connection drops early
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        length = response.headers.get("Content-Length")
    if length is not None and size != int(length):
        raise HTTPException(f"connection closed after {size} of {length} bytes")
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())


def extract(archive: Path, directory: Path) -> None:
    """Extract the regular files of ``archive`` (tar.gz) into ``directory``; refuse unsafe members."""
    with tempfile.TemporaryDirectory(dir=directory, prefix=f".{archive.name}.") as scratch:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(scratch, filter="data")
        except tarfile.FilterError as exc:
            raise ConfigError(f"lth: refusing to extract {archive}: {exc}") from None
        for folder, _, files in os.walk(scratch):  # does not follow links
            for file in files:
                source = Path(folder, file)
                if source.is_symlink():
                    continue
                target = directory / source.relative_to(scratch)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
