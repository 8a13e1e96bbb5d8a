"""A loopback mirror of every file ``config/full.yaml`` downloads, for the full-scale rehearsal.

No dataset or pretrained weight can be downloaded where the tests run, yet the full config's path (real archive
formats, real model sizes) must run somewhere before a user with GPUs runs it. ``build`` writes each file the full
config names, under its upstream file name and at its upstream path (``files/<host>/<path>``), with small contents
in the real internal layout:

* ``cifar-10-python.tar.gz`` (``cifar-10-batches-py/``: five data batches, the test batch, ``batches.meta``) and
  ``cifar-100-python.tar.gz`` (``cifar-100-python/``: ``train``, ``test``, ``meta`` with fine and coarse labels);
* ``102flowers.tgz`` (``jpg/image_NNNNN.jpg``), ``imagelabels.mat`` (``labels``) and ``setid.mat`` (``trnid``,
  ``valid``, ``tstid``), as scipy.io writes MATLAB files;
* ``VOCtrainval_06-Nov-2007.tar`` and ``VOCtest_06-Nov-2007.tar``, which both unpack into ``VOCdevkit/VOC2007``;
* the Open Images V4 CSVs (``class-descriptions-boxable.csv``, ``{split}/{split}-annotations-bbox.csv``, with rows
  of classes other than the chosen ones) and the images at the bucket's paths (``{split}/{ImageID}.jpg``);
* torchvision's weight files of the real architectures (random init, built by torchvision itself), each named with
  the first 8 hex digits of its own SHA-256 as torchvision names them;
* pytorch-ssd's ``mobilenet-v1-ssd-mp-0_675.pth``: random tensors under its 202 key names and shapes
  (``shared/reference/pytorch_ssd_mb1_state_dict.json``, carried as :data:`mirror_files.SSD_KEYS`), not our model's.

It then writes ``rehearsal.yaml``: ``config/rehearsal.yaml`` (the counts, every device label on the CPU) with every
download pointed at the mirror and checked against the mirror's checksums. ``serve`` serves ``files/`` on
127.0.0.1, optionally failing chosen paths with a status, so the failure paths run through the workflow too.

    python -m dlperf.data.mirror build .rehearsal/mirror --url http://127.0.0.1:8642
    python -m dlperf.data.mirror serve .rehearsal/mirror

``rehearse`` does both and runs the workflow on the full config against the mirror, in its own working directory
(``.rehearsal/work``: resources/, results/ and the report), so the embedded default's results stay as they are::

    python -m dlperf.data.mirror rehearse --cores 2      # make rehearse
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import yaml

from dlperf.atomic import atomic_dir, atomic_write, write_json
from dlperf.data import mirror_files
from dlperf.data.download import file_checksum
from dlperf.data.mirror_server import serve_forever, serving

FULL_CONFIG = Path("config", "full.yaml")  # paths from the repository root, where make and snakemake run
COUNTS_CONFIG = Path("config", "rehearsal.yaml")
DEFAULT_PORT = 8642  # fixed: the URLs are in the downloads' params, so a new port would rerun every download
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
MANIFEST = "manifest.json"
OVERRIDE = "rehearsal.yaml"
FILES = "files"
IMAGENET = "imagenet"  # the local copy of ImageNet's validation set that the full config names


@dataclass(frozen=True)
class Upstream:
    """One download of the full config: where it lives, and where in the config its entry is."""

    url: str
    key: tuple  # path of the entry in the config, e.g. ("data", "cifar10", "download")
    checksum: str  # the entry's checksum field in the override: md5, sha256 or sha256_prefix

    @property
    def name(self) -> str:
        return Path(urllib.parse.urlsplit(self.url).path).name


def mirror_path(url: str) -> str:
    """``<host>/<path>`` of ``url``: where the mirror keeps its file, under ``files/``."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def upstreams(full: Mapping) -> list[Upstream]:
    """Every file ``full`` (the full config) downloads, with where its entry sits."""
    found = []
    for name, entry in full["data"].items():
        if entry["source"] != "download":
            continue
        if "download" in entry:
            found.append(Upstream(entry["download"]["url"], ("data", name, "download"), "md5"))
        for role, download in entry.get("downloads", {}).items():
            found.append(Upstream(download["url"], ("data", name, "downloads", role), "md5"))
    for name, backbone in full.get("transfer", {}).get("backbones", {}).items():
        if backbone["weights"] != "pretrain":
            found.append(Upstream(backbone["weights"]["url"], ("transfer", "backbones", name, "weights"),
                                  "sha256_prefix"))
    for name, model in full.get("compress", {}).get("deep", {}).get("imagenet", {}).get("models", {}).items():
        found.append(Upstream(model["weights"]["url"], ("compress", "deep", "imagenet", "models", name, "weights"),
                              "sha256_prefix"))
    ssd = full.get("ssd")
    if ssd:
        for k, download in enumerate(ssd["data"]["voc"].get("downloads", [])):
            found.append(Upstream(download["url"], ("ssd", "data", "voc", "downloads", k), "md5"))
        if ssd["pretrained"]["source"] == "download":
            found.append(Upstream(ssd["pretrained"]["download"]["url"], ("ssd", "pretrained", "download"), "sha256"))
    return found


def _writer(upstream: Upstream, full: Mapping) -> Callable[[Path], Path]:
    """The function that writes ``upstream``'s file into a directory (returning the file it wrote)."""
    name = upstream.name
    if name in mirror_files.ARCHIVES:
        return mirror_files.ARCHIVES[name]
    if upstream.key[0] == "transfer":
        arch = full["transfer"]["backbones"][upstream.key[2]]["arch"]
        stem = name.rsplit("-", 1)[0]  # resnet50-0676ba61.pth -> resnet50: the name keeps torchvision's stem
        return lambda directory: mirror_files.torchvision_weights(directory, arch, stem)
    if upstream.key[:3] == ("compress", "deep", "imagenet"):
        stem = name.rsplit("-", 1)[0]  # vgg16-397923af.pth -> vgg16, alexnet-owt-7be5be79.pth -> alexnet-owt
        return lambda directory: mirror_files.torchvision_weights(directory, upstream.key[4], stem)
    if upstream.key[:2] == ("ssd", "pretrained"):
        return lambda directory: mirror_files.ssd_checkpoint(directory / name)
    raise ValueError(f"the mirror cannot write {upstream.url} (config {'.'.join(map(str, upstream.key))}): "
                     f"no writer for {name!r}")


def _checksums(path: Path) -> dict[str, str]:
    return {"md5": file_checksum(path, "md5"), "sha256": file_checksum(path, "sha256")}


def build(root: str | os.PathLike, url: str = DEFAULT_URL, *, full_config: str | os.PathLike = FULL_CONFIG,
          counts_config: str | os.PathLike = COUNTS_CONFIG) -> dict:
    """Write the mirror under ``root`` (``files/``, ``manifest.json``, ``rehearsal.yaml``); return the manifest.

    The manifest maps each upstream URL to the mirror's copy (its config key, path under ``files/``, size and
    checksums) and ``"openimages"`` to the CSV and image folders; ``url`` is where ``rehearsal.yaml`` expects it. ``root/files`` appears whole or not at all; rebuilding replaces it.
    """
    root = Path(root)
    full = yaml.safe_load(Path(full_config).read_text())
    entries = {}
    with atomic_dir(root / FILES) as files:
        for upstream in upstreams(full):
            with tempfile.TemporaryDirectory(dir=root) as scratch:
                written = _writer(upstream, full)(Path(scratch))
                sums = _checksums(written)
                name = written.name  # a torchvision weight file takes its own SHA-256 prefix as its name
                path = f"{mirror_path(upstream.url).rsplit('/', 1)[0]}/{name}"
                (files / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(written, files / path)
            entries[upstream.url] = {"key": list(upstream.key), "checksum": upstream.checksum, "path": path,
                                     "bytes": (files / path).stat().st_size, **sums}
        openimages = full.get("ssd", {}).get("data", {}).get("openimages", {})
        if openimages.get("source") == "download":
            d = openimages["download"]
            csv_path, images_path = mirror_path(d["csv_url"]), mirror_path(d["images_url"])
            counts = mirror_files.openimages(files / csv_path, files / images_path, openimages["classes"])
            entries["openimages"] = {"csv_path": csv_path, "images_path": images_path, **counts}
    extra = {}
    if full.get("compress", {}).get("deep", {}).get("imagenet", {}).get("models"):
        # ImageNet's validation images cannot be downloaded: the full config names a local copy, the mirror makes one.
        # A rebuild keeps an identical copy as it is: the workflow reads the folder, whose time would rerun its jobs.
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            fresh = mirror_files.imagenet_val(Path(scratch) / IMAGENET)
            if _tree_bytes(fresh) != _tree_bytes(root / IMAGENET):
                with atomic_dir(root / IMAGENET) as imagenet:
                    shutil.copytree(fresh, imagenet, dirs_exist_ok=True)
        extra["imagenet_val"] = str((root / IMAGENET).resolve())
    write_json(root / MANIFEST, {"files": entries, **extra}, indent=1)
    write_override(root, url, counts_config=counts_config)
    return json.loads((root / MANIFEST).read_text())


def _tree_bytes(root: Path) -> list[tuple[str, bytes]]:
    """Every file under ``root`` (none if it is absent): its path relative to ``root`` and its bytes, in order."""
    return sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file())


def override(manifest: Mapping, url: str, counts: Mapping) -> dict:
    """``counts`` (config/rehearsal.yaml) with every download of the full config pointed at the mirror at ``url``."""
    url = url.rstrip("/")
    merged = copy.deepcopy(dict(counts))
    voc = {}
    for upstream_url, entry in manifest["files"].items():
        if upstream_url == "openimages":
            oi = _nested(merged, ("ssd", "data", "openimages"))
            oi["download"] = {**oi.get("download", {}), "csv_url": f"{url}/{entry['csv_path']}",
                              "images_url": f"{url}/{entry['images_path']}"}
            continue
        checksum = entry["sha256"][:8] if entry["checksum"] == "sha256_prefix" else entry[entry["checksum"]]
        download = {"url": f"{url}/{entry['path']}", entry["checksum"]: checksum}
        key = tuple(entry["key"])
        if key[:4] == ("ssd", "data", "voc", "downloads"):  # a list: merged whole, so written whole, in order
            voc[key[4]] = {**download, "mirror": None}
            continue
        target = _nested(merged, key[:-1])
        target[key[-1]] = {**target.get(key[-1], {}), **download}
    if voc:
        _nested(merged, ("ssd", "data", "voc"))["downloads"] = [voc[k] for k in sorted(voc)]
    if "imagenet_val" in manifest:   # the mirror's copy of ImageNet's validation layout: VGG-16 can run
        deep = _nested(merged, ("compress", "deep"))
        deep.setdefault("imagenet", {})["val"] = manifest["imagenet_val"]
        if "vgg16" not in deep.setdefault("networks", []):
            deep["networks"].append("vgg16")
    return merged


def write_override(root: str | os.PathLike, url: str, *, counts_config: str | os.PathLike = COUNTS_CONFIG) -> Path:
    """(Re)write ``root/rehearsal.yaml`` for a mirror served at ``url`` (the files do not depend on it), and record
    ``url`` in the manifest, where ``serve`` finds it."""
    root = Path(root)
    manifest = json.loads((root / MANIFEST).read_text()) | {"url": url.rstrip("/")}
    write_json(root / MANIFEST, manifest, indent=1)
    counts = yaml.safe_load(Path(counts_config).read_text())
    text = (f"# The full-scale rehearsal against the mirror at {url}, written by dlperf.data.mirror from\n"
            f"# {counts_config}. Run: snakemake --configfile config/full.yaml {root / OVERRIDE}\n")
    with atomic_write(root / OVERRIDE) as fh:
        fh.write(text + yaml.safe_dump(override(manifest, url, counts), sort_keys=False))
    return root / OVERRIDE


def rehearse(directory: str | os.PathLike = ".rehearsal", port: int = DEFAULT_PORT,
             snakemake_args: list[str] = ()) -> int:
    """Build the mirror in ``directory/mirror``, serve it on 127.0.0.1:``port`` while Snakemake runs the full config
    merged with the mirror's ``rehearsal.yaml`` in ``directory/work``; return Snakemake's exit status."""
    directory = Path(directory)
    root = directory / "mirror"
    build(root, f"http://127.0.0.1:{port}")
    command = [sys.executable, "-m", "snakemake", "--directory", str(directory / "work"),
               "--configfile", str(FULL_CONFIG), str(root / OVERRIDE), *snakemake_args]
    with serving(root / FILES, port=port):
        print(" ".join(command), flush=True)
        return subprocess.call(command)


def _nested(config: dict, key: tuple) -> dict:
    for part in key:
        config = config.setdefault(part, {})
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dlperf.data.mirror", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write the mirror and its rehearsal.yaml")
    build_parser.add_argument("root", type=Path)
    build_parser.add_argument("--url", default=DEFAULT_URL, help=f"where it will be served (default {DEFAULT_URL})")
    serve_parser = commands.add_parser("serve", help="serve root/files on 127.0.0.1 at the manifest's URL")
    serve_parser.add_argument("root", type=Path)
    serve_parser.add_argument("--fail", action="append", default=[], metavar="PATH=STATUS",
                              help="answer this path (under files/) with this HTTP status; repeatable")
    rehearse_parser = commands.add_parser("rehearse", help="build, serve and run the workflow on it; other "
                                                            "arguments go to snakemake (e.g. --cores 2)")
    rehearse_parser.add_argument("--dir", type=Path, default=Path(".rehearsal"))
    rehearse_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "rehearse":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "rehearse":
        raise SystemExit(rehearse(args.dir, args.port, rest))
    if args.command == "build":
        manifest = build(args.root, args.url)
        total = sum(e.get("bytes", 0) for e in manifest["files"].values())
        print(f"{args.root}: {len(manifest['files'])} downloads, {total / 2**20:.0f} MiB; "
              f"override: {args.root / OVERRIDE}")
    else:
        failures = dict(_failure(spec) for spec in args.fail)
        serve_forever(args.root / FILES, json.loads((args.root / MANIFEST).read_text())["url"], failures)


def _failure(spec: str) -> tuple[str, int]:
    path, _, status = spec.rpartition("=")
    if not path or not status.isdigit():
        raise SystemExit(f"--fail wants PATH=STATUS, got {spec!r}")
    return "/" + path.lstrip("/"), int(status)


if __name__ == "__main__":
    main()
