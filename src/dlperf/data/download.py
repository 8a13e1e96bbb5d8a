"""Verified, resumable downloads and safe, atomic archive extraction.

The full config fetches public datasets and weights (CIFAR, VOC, Open Images, Decathlon, ``.pth``
checkpoints) from URLs it pins together with a checksum. A rule's output must be exactly the published
bytes or nothing: a half-written file that Snakemake took for a finished output would poison every
result downstream. So ``fetch`` streams into ``<dest>.part``, resumes it with HTTP Range requests after
a dropped connection, verifies the checksum and only then renames it onto ``dest``; ``extract`` refuses
archive members that could write outside the target directory, and unpacks into a temporary sibling
that replaces the target only once every member is out.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import lzma
import os
import re
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from dlperf.atomic import atomic_dir

try:
    from tqdm import tqdm
except ImportError:  # progress bars are a nicety; downloads work without them
    tqdm = None

CHUNK_BYTES = 1 << 20  # stream in 1 MiB pieces: archives run to gigabytes, memory stays flat
RETRY_BACKOFF_S = 1.0  # pause before the first retry; doubles with each further one
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # the server may answer next time
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
ZIP_SUFFIXES = (".zip",)
USER_AGENT = "dlperf-download"  # some hosts refuse urllib's default agent

_log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A download or extraction failed; the message names the URL or member and what was wrong."""


class _Interrupted(Exception):
    """A transfer stopped early or hit a transient error: worth retrying, resuming the ``.part``."""


def resolve_url(url: str, mirror: str | None = None) -> str:
    """Return where to fetch ``url`` from: ``url`` itself, or the same file name directly under ``mirror``.

    A mirror is a flat base URL that holds the files under their upstream names, because that is what a
    site-local cache of several upstream hosts looks like. Scheme, host, path prefix and query of ``url``
    are all replaced:
    ``resolve_url("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "http://cache/dl/")``
    is ``"http://cache/dl/cifar-10-python.tar.gz"``.
    """
    if not mirror:
        return url
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    if not name:
        raise ValueError(f"cannot mirror {url!r}: its path names no file")
    return f"{mirror.rstrip('/')}/{name}"


def file_checksum(path: str | os.PathLike, algo: str) -> str:
    """Hex digest of the file at ``path`` with the hashlib algorithm ``algo``, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algo).hexdigest()


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    sha256_prefix: str | None = None,
    mirror: str | None = None,
    retries: int = 3,
    timeout: float = 60,
    progress: bool = True,
    allow_unverified: bool = False,
) -> Path:
    """Download ``url`` (or its copy under ``mirror``) to ``dest``, verify it, and return ``dest``.

    Idempotent: a ``dest`` that already matches the checksum is returned without a request, so a rerun
    costs nothing; one that does not match is deleted and fetched again. Bytes go to ``<dest>.part``;
    a dropped connection or short body is resumed from where the ``.part`` ends, up to ``retries``
    times. ``md5`` exists because CIFAR and VOC publish only md5; prefer ``sha256``. ``sha256_prefix`` is for
    files that publish only the start of their SHA-256, as torchvision's weight files do in their names
    (``resnet50-0676ba61.pth``); it is the check torchvision itself applies to them.

    On failure nothing is at ``dest``. The ``.part`` survives only an interrupted transfer, so that a
    rerun resumes it; a checksum mismatch deletes it, since resuming garbage would only repeat it.
    """
    algo, expected = _expected_checksum(sha256, md5, allow_unverified, sha256_prefix)
    dest = Path(dest)
    if dest.exists():
        if expected is None or file_checksum(dest, algo).startswith(expected):
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    source = resolve_url(url, mirror)
    _download_with_retries(source, part, retries=retries, timeout=timeout, progress=progress)
    if expected is not None:
        actual = file_checksum(part, algo)
        if not actual.startswith(expected):
            part.unlink()
            raise DownloadError(f"{source}: {algo} mismatch: expected {expected}, got {actual}")
    os.replace(part, dest)
    return dest


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a ``.tar[.gz|.bz2|.xz]``, ``.tgz`` or ``.zip`` archive into ``dest_dir`` and return it.

    Every member is checked before anything is written: absolute paths, ``..`` components, symbolic
    and hard links, device files and FIFOs are refused with the member named, because any of them lets
    a downloaded archive write outside ``dest_dir``. Tar extraction additionally applies the stdlib
    ``"data"`` filter where the running Python has it; the own checks keep the behaviour the same
    where it does not. Members land in a temporary sibling that replaces ``dest_dir`` only when all
    are out, so a failure leaves no ``dest_dir`` (and an existing one untouched).
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    name = archive.name.lower()
    if name.endswith(ZIP_SUFFIXES):
        unpack = _extract_zip
    elif name.endswith(TAR_SUFFIXES):
        unpack = _extract_tar
    else:
        raise DownloadError(f"{archive}: not a known archive type {TAR_SUFFIXES + ZIP_SUFFIXES}")
    with atomic_dir(dest_dir) as staging:
        try:
            unpack(archive, staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
            raise DownloadError(f"{archive}: cannot extract: {exc}") from exc
    return dest_dir


def fetch_and_extract(
    url: str, archive_path: str | os.PathLike, dest_dir: str | os.PathLike, **fetch_options
) -> Path:
    """Fetch a verified archive and unpack it, the shape of every dataset rule in the full config.

    ``fetch_options`` go to ``fetch``: the checksum (``sha256`` or ``md5``) and optionally ``mirror``,
    ``retries``, ``timeout``, ``progress``. Returns ``dest_dir``.
    """
    return extract(fetch(url, archive_path, **fetch_options), dest_dir)


def _expected_checksum(
    sha256: str | None, md5: str | None, allow_unverified: bool, sha256_prefix: str | None = None
) -> tuple[str | None, str | None]:
    """The (algorithm, lowercase hex digest or its prefix) to verify against; refuse ambiguous or missing ones."""
    if sum(bool(c) for c in (sha256, md5, sha256_prefix)) > 1:
        raise ValueError(
            "give one of sha256, sha256_prefix or md5, not several: a second checksum adds no safety, "
            "only a second value to keep in sync"
        )
    if sha256:
        if len(sha256.strip()) != 64:
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}; use sha256_prefix for a prefix")
        return "sha256", sha256.strip().lower()
    if sha256_prefix:
        if len(sha256_prefix.strip()) < 8:
            raise ValueError(f"sha256_prefix must have at least 8 hex digits, got {sha256_prefix!r}")
        return "sha256", sha256_prefix.strip().lower()
    if md5:
        return "md5", md5.strip().lower()
    if not allow_unverified:
        raise ValueError(
            "no checksum given: without sha256 or md5 a truncated, corrupted or replaced file would "
            "pass for the dataset; pass allow_unverified=True only for files with no published checksum"
        )
    return None, None


def _download_with_retries(url: str, part: Path, *, retries: int, timeout: float, progress: bool) -> None:
    """Bring ``part`` to the complete body of ``url``, resuming after each interruption."""
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout=timeout, progress=progress)
            return
        except _Interrupted as exc:
            if attempt == retries:
                raise DownloadError(f"{url}: gave up after {retries + 1} attempts: {exc}") from exc
            pause = RETRY_BACKOFF_S * 2**attempt
            _log.warning("%s: %s; retrying in %.1f s", url, exc, pause)
            time.sleep(pause)


def _download_once(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """One request: append to ``part`` from where it ends (206), or rewrite it (200)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:
            part.unlink()
            raise _Interrupted(f"server cannot resume at byte {offset} (HTTP 416); restarting") from exc
        if exc.code in RETRYABLE_STATUS:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(f"cannot connect: {exc}") from exc

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None else None
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Interrupted(f"asked for bytes from {offset}, got them from {start}; restarting")
            mode = "ab"
        else:
            offset, mode, total = 0, "wb", None
        if total is None and length is not None:
            total = offset + length
        received = _stream(response, part, mode, offset=offset, total=total, progress=progress)
    if total is not None and offset + received < total:
        raise _Interrupted(f"received {received} of {total - offset} bytes announced by the server")


def _content_range(header: str) -> tuple[int, int | None]:
    """(first byte, total size or None) from a ``Content-Range: bytes a-b/n`` header."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", header.strip())
    if match is None:
        raise _Interrupted(f"206 response with an unreadable Content-Range {header!r}")
    return int(match[1]), None if match[2] == "*" else int(match[2])


def _stream(response, part: Path, mode: str, *, offset: int, total: int | None, progress: bool) -> int:
    """Copy the response body to ``part`` chunk by chunk; return the bytes received."""
    received = 0
    with open(part, mode) as out, _progress_bar(total, offset, part.stem, progress) as bar:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise _Interrupted(f"connection lost after {received} bytes: {exc!r}") from exc
            if not chunk:
                break
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return received


class _NoProgress:
    """Stands in for a tqdm bar when tqdm is absent or progress is off."""

    def update(self, n: int) -> None:
        """Ignore the progress report."""


def _progress_bar(total: int | None, initial: int, label: str, enabled: bool):
    """A tqdm byte counter on stderr (the rule's log), or a silent stand-in."""
    if tqdm is None or not enabled:
        return contextlib.nullcontext(_NoProgress())
    return tqdm(
        total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
        file=sys.stderr,
    )


def _unsafe_path(name: str) -> str | None:
    """Why a member name could land outside the extraction directory, or None if it cannot."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in path.parts:
        return "path traversal ('..')"
    return None


def _unsafe_tar_member(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` is unsafe, or None for a plain file or directory inside the target."""
    if reason := _unsafe_path(member.name):
        return reason
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if not (member.isreg() or member.isdir()):
        return "device file or FIFO"
    return None


def _unsafe_zip_member(info: zipfile.ZipInfo) -> str | None:
    """Why extracting ``info`` is unsafe, or None; zip keeps a Unix file type in ``external_attr``."""
    if reason := _unsafe_path(info.filename):
        return reason
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "device file or FIFO"
    return None


def _extract_tar(archive: Path, staging: Path) -> None:
    """Check every tar member, then extract them all into ``staging``."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            if reason := _unsafe_tar_member(member):
                raise DownloadError(f"{archive}: refusing member {member.name!r}: {reason}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, members=members, filter="data")
        else:
            tar.extractall(staging, members=members)


def _extract_zip(archive: Path, staging: Path) -> None:
    """Check every zip member, then extract them all into ``staging``."""
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for info in members:
            if reason := _unsafe_zip_member(info):
                raise DownloadError(f"{archive}: refusing member {info.filename!r}: {reason}")
        zipped.extractall(staging, members=members)
