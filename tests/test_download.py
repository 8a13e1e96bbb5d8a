"""dlperf.data.download against a real HTTP server on 127.0.0.1 serving archives built at test time."""
from __future__ import annotations

import hashlib
import io
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from http_fixture import serve_directory

from dlperf.data import download
from dlperf.data.download import DownloadError, extract, fetch, fetch_and_extract, file_checksum, resolve_url

MEMBERS = {
    "cifar/data_batch_1": random.Random(0).randbytes(300_000),  # incompressible: the archive stays ~300 kB
    "cifar/batches.meta": b"label_names: [airplane, automobile]\n",
}
TIMEOUT = 5  # seconds; everything is local


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A tar archive of ``members``, compressed as its suffix says."""
    compression = {".gz": "gz", ".tgz": "gz", ".bz2": "bz2", ".xz": "xz"}.get(path.suffix, "")
    with tarfile.open(path, f"w:{compression}") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return path


def write_archive(path: Path, members: dict[str, bytes]) -> Path:
    return write_zip(path, members) if path.suffix == ".zip" else write_tar(path, members)


def digest(path: Path, algo: str = "sha256") -> str:
    return hashlib.new(algo, path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retries happen at once: the tests check what is retried, not how long it waits."""
    monkeypatch.setattr(download, "RETRY_BACKOFF_S", 0.0)


@pytest.fixture
def www(tmp_path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    write_tar(root / "good.tar.gz", MEMBERS)
    write_zip(root / "good.zip", MEMBERS)
    return root


@pytest.fixture
def server(www):
    with serve_directory(www) as running:
        yield running


@pytest.fixture
def archive(www) -> Path:
    return www / "good.tar.gz"


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "resources" / "good.tar.gz"


@pytest.mark.parametrize(("name", "algo"), [("good.tar.gz", "sha256"), ("good.zip", "md5")])
def test_fetch_verifies_checksum_and_extract_writes_every_member(server, www, tmp_path, name, algo):
    dest = tmp_path / "resources" / name
    fetched = fetch(f"{server.url}/{name}", dest, **{algo: digest(www / name, algo)}, timeout=TIMEOUT)
    assert fetched == dest
    assert dest.read_bytes() == (www / name).read_bytes()
    assert not part_of(dest).exists()
    assert extract(dest, tmp_path / "cifar") == tmp_path / "cifar"
    assert tree(tmp_path / "cifar") == MEMBERS


def test_second_fetch_of_a_verified_file_makes_no_request(server, archive, dest):
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert len(server.requests) == 1


def test_existing_file_with_wrong_checksum_is_fetched_again(server, archive, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"stale")
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()


def test_checksum_accepts_uppercase_hex(server, archive, dest):
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive).upper(), timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()


def test_checksum_mismatch_names_both_digests_and_leaves_no_file(server, www, archive, dest):
    corrupt = bytearray(archive.read_bytes())
    corrupt[1000] ^= 0xFF
    (www / "corrupt.tar.gz").write_bytes(corrupt)
    expected = digest(archive)
    with pytest.raises(DownloadError) as raised:
        fetch(f"{server.url}/corrupt.tar.gz", dest, sha256=expected, timeout=TIMEOUT)
    message = str(raised.value)
    assert expected in message
    assert hashlib.sha256(corrupt).hexdigest() in message
    assert "corrupt.tar.gz" in message
    assert not dest.exists()
    assert not part_of(dest).exists()


def test_truncated_response_is_resumed_with_a_range_request(server, archive, dest):
    server.truncate(after_bytes=100_000, times=1)
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()
    size = archive.stat().st_size
    assert [(r.status, r.range, r.body_bytes) for r in server.requests] == [
        (200, None, 100_000),
        (206, "bytes=100000-", size - 100_000),
    ]


def test_response_truncated_on_every_attempt_fails_and_keeps_only_the_part_for_a_rerun(server, archive, dest):
    server.truncate(after_bytes=50_000)
    with pytest.raises(DownloadError, match=r"3 attempts.*received 50000 of \d+ bytes"):
        fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), retries=2, timeout=TIMEOUT)
    assert [r.range for r in server.requests] == [None, "bytes=50000-", "bytes=100000-"]
    assert not dest.exists()
    assert part_of(dest).read_bytes() == archive.read_bytes()[:150_000]


def test_rerun_after_failed_attempts_resumes_the_kept_part(server, archive, dest):
    server.truncate(after_bytes=50_000, times=2)
    with pytest.raises(DownloadError):
        fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), retries=1, timeout=TIMEOUT)
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()
    assert server.requests[-1].range == "bytes=100000-"


def test_existing_part_is_resumed_requesting_only_the_remaining_bytes(server, archive, dest):
    data = archive.read_bytes()
    half = len(data) // 2
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(data[:half])
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert dest.read_bytes() == data
    [request] = server.requests
    assert (request.status, request.range, request.body_bytes) == (206, f"bytes={half}-", len(data) - half)


def test_complete_part_refused_with_416_is_fetched_again(server, archive, dest):
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(archive.read_bytes() + b"extra")
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()
    assert [(r.status, r.range) for r in server.requests] == [
        (416, f"bytes={archive.stat().st_size + 5}-"),
        (200, None),
    ]


def test_server_ignoring_range_restarts_from_zero_and_still_verifies(server, archive, dest):
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(b"\0" * 1000)  # not a prefix of the archive: appending would fail the checksum
    server.ignore_range = True
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()
    assert [(r.status, r.range) for r in server.requests] == [(200, "bytes=1000-")]


def test_http_404_fails_at_once_naming_the_status(server, dest):
    url = f"{server.url}/missing.tar.gz"
    with pytest.raises(DownloadError, match="404") as raised:
        fetch(url, dest, sha256="0" * 64, timeout=TIMEOUT)
    assert url in str(raised.value)
    assert len(server.requests) == 1
    assert not dest.exists()
    assert not part_of(dest).exists()


def test_http_503_is_retried(server, archive, dest):
    server.fail(503, times=2)
    fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), timeout=TIMEOUT)
    assert [r.status for r in server.requests] == [503, 503, 200]


def test_mirror_override_sends_the_request_to_the_mirror(server, archive, dest, tmp_path):
    (tmp_path / "mirror" / "pub").mkdir(parents=True)
    (tmp_path / "mirror" / "pub" / "good.tar.gz").write_bytes(archive.read_bytes())
    with serve_directory(tmp_path / "mirror") as mirror:
        fetch(
            f"{server.url}/upstream/datasets/good.tar.gz",
            dest,
            sha256=digest(archive),
            mirror=f"{mirror.url}/pub/",
            timeout=TIMEOUT,
        )
        assert [r.path for r in mirror.requests] == ["/pub/good.tar.gz"]
    assert server.requests == []
    assert dest.read_bytes() == archive.read_bytes()


def test_resolve_url_puts_the_file_name_under_the_mirror():
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz?dl=1"
    assert resolve_url(url) == url
    assert resolve_url(url, "http://cache.local/dl/") == "http://cache.local/dl/cifar-10-python.tar.gz"
    assert resolve_url(url, "http://cache.local/dl") == "http://cache.local/dl/cifar-10-python.tar.gz"


def test_fetch_without_checksum_is_refused_before_any_request(server, dest):
    with pytest.raises(ValueError, match="allow_unverified=True"):
        fetch(f"{server.url}/good.tar.gz", dest, timeout=TIMEOUT)
    assert server.requests == []
    assert not dest.exists()


def test_fetch_with_both_checksums_is_refused(server, archive, dest):
    with pytest.raises(ValueError, match="one of sha256, sha256_prefix or md5"):
        fetch(f"{server.url}/good.tar.gz", dest, sha256=digest(archive), md5=digest(archive, "md5"))
    assert server.requests == []


def test_a_sha256_prefix_verifies_files_that_publish_only_the_start_of_their_digest(server, archive, dest):
    """torchvision's weight files carry the first 8 hex digits of their SHA-256 in their names."""
    fetch(f"{server.url}/good.tar.gz", dest, sha256_prefix=digest(archive)[:8], timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()
    dest.unlink()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(f"{server.url}/good.tar.gz", dest, sha256_prefix="0" * 8, timeout=TIMEOUT, retries=0)
    assert not dest.exists()
    with pytest.raises(ValueError, match="at least 8"):
        fetch(f"{server.url}/good.tar.gz", dest, sha256_prefix="abc")


def test_unverified_fetch_is_allowed_when_asked_for(server, archive, dest):
    fetch(f"{server.url}/good.tar.gz", dest, allow_unverified=True, timeout=TIMEOUT)
    assert dest.read_bytes() == archive.read_bytes()


def test_fetch_and_extract_yields_the_verified_members(server, archive, tmp_path):
    out = fetch_and_extract(
        f"{server.url}/good.tar.gz", tmp_path / "good.tar.gz", tmp_path / "cifar", sha256=digest(archive)
    )
    assert out == tmp_path / "cifar"
    assert tree(out) == MEMBERS


def test_file_checksum_matches_published_digests(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert file_checksum(path, "sha256") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_checksum(path, "md5") == "900150983cd24fb0d6963f7d28e17f72"


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip"])
def test_extract_reads_every_supported_format(tmp_path, suffix):
    archive = write_archive(tmp_path / f"data{suffix}", MEMBERS)
    assert tree(extract(archive, tmp_path / "out")) == MEMBERS


def test_extract_replaces_an_existing_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_bytes(b"old")
    extract(write_tar(tmp_path / "data.tar", MEMBERS), tmp_path / "out")
    assert tree(tmp_path / "out") == MEMBERS


def test_extract_of_a_truncated_archive_leaves_no_directory(tmp_path):
    good = write_tar(tmp_path / "good.tar.gz", MEMBERS).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DownloadError, match="cannot extract"):
        extract(tmp_path / "cut.tar.gz", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar.gz", "good.tar.gz"]


def test_extract_refuses_an_unknown_archive_type(tmp_path):
    (tmp_path / "data.rar").write_bytes(b"Rar!")
    with pytest.raises(DownloadError, match="data.rar"):
        extract(tmp_path / "data.rar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
}
ZIP_MODES = {"file": stat.S_IFREG | 0o644, "symlink": stat.S_IFLNK | 0o777}


def write_unsafe_archive(path: Path, name: str, kind: str, target: str) -> Path:
    """An archive whose first member is harmless, so a refusal must also undo work already done."""
    payload = target.encode() if kind == "symlink" else b"pwned"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zipped:
            zipped.writestr("harmless.txt", b"fine")
            info = zipfile.ZipInfo(name)
            info.external_attr = ZIP_MODES[kind] << 16
            zipped.writestr(info, payload)
        return path
    with tarfile.open(path, "w") as tar:
        harmless = tarfile.TarInfo("harmless.txt")
        harmless.size = 4
        tar.addfile(harmless, io.BytesIO(b"fine"))
        info = tarfile.TarInfo(name)
        info.type, info.linkname = TAR_TYPES[kind], target
        info.size = len(payload) if kind == "file" else 0
        tar.addfile(info, io.BytesIO(payload))
    return path


# (archive, member name, member kind, link target); {outside} is a directory beside the target
UNSAFE_MEMBERS = [
    pytest.param("evil.tar", "../evil", "file", "", id="tar ../evil"),
    pytest.param("evil.tar", "{outside}/evil", "file", "", id="tar absolute path"),
    pytest.param("evil.tar", "link", "symlink", "{outside}", id="tar symlink"),
    pytest.param("evil.tar", "hard", "hardlink", "{outside}/victim", id="tar hard link"),
    pytest.param("evil.tar", "pipe", "fifo", "", id="tar fifo"),
    pytest.param("evil.zip", "../evil", "file", "", id="zip ../evil"),
    pytest.param("evil.zip", "{outside}/evil", "file", "", id="zip absolute path"),
    pytest.param("evil.zip", "link", "symlink", "{outside}", id="zip symlink"),
]


@pytest.mark.parametrize(("archive_name", "member", "kind", "target"), UNSAFE_MEMBERS)
def test_extract_refuses_unsafe_member_naming_it_and_writes_nothing(
    tmp_path, archive_name, member, kind, target
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"victim")
    member, target = member.format(outside=outside), target.format(outside=outside)
    archive = write_unsafe_archive(tmp_path / archive_name, member, kind, target)
    before = tree(tmp_path)
    with pytest.raises(DownloadError, match="refusing member") as raised:
        extract(archive, tmp_path / "work" / "out")
    assert repr(member) in str(raised.value)
    assert tree(tmp_path) == before
    assert list((tmp_path / "work").iterdir()) == []


def test_extract_checks_members_the_same_on_a_python_without_the_data_filter(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")
    assert tree(extract(write_tar(tmp_path / "good.tar", MEMBERS), tmp_path / "good")) == MEMBERS
    with pytest.raises(DownloadError, match="refusing member '../evil'"):
        extract(write_unsafe_archive(tmp_path / "evil.tar", "../evil", "file", ""), tmp_path / "evil")
    assert not (tmp_path / "evil").exists()
