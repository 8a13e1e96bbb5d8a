"""``python -m dlperf.bundle pack|verify|figures``: what ``make bundle`` and ``make figures BUNDLE=...`` run.

    python -m dlperf.bundle pack [--configfile FILE ...] [--with-checkpoints] [--output PATH]
    python -m dlperf.bundle verify BUNDLE
    python -m dlperf.bundle figures BUNDLE [--cores N] [--dry-run] [--force] [-- SNAKEMAKE ARGS]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlperf.bundle.archive import BundleError, figures, pack, verify


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlperf.bundle", description=__doc__.split("\n")[0])
    parser.add_argument("--directory", "-d", type=Path, default=Path("."),
                        help="the run's working directory, as snakemake --directory (default: here, the workflow's)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack the finished run's results")
    p.add_argument("--configfile", nargs="+", default=[], help="the config files the run was made with "
                   "(default: config/config.yaml, the embedded default)")
    p.add_argument("--with-checkpoints", action="store_true", help="also carry every .pt, .onnx and .dlpf")
    p.add_argument("--output", "-o", type=Path, help="default: dlperf-bundle-<commit>.tar.gz")
    v = sub.add_parser("verify", help="check a bundle against its manifest")
    v.add_argument("bundle", type=Path)
    f = sub.add_parser("figures", help="unpack a bundle here and build every figure, table and the report from it")
    f.add_argument("bundle", type=Path)
    f.add_argument("--cores", default="all")
    f.add_argument("--dry-run", "-n", action="store_true", help="list the jobs, run none")
    f.add_argument("--force", action="store_true", help="overwrite results here that differ from the bundle's")
    f.add_argument("snakemake_args", nargs="*", help="after --: passed to Snakemake")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            output = args.output
            if output is None:
                from dlperf.provenance import git_state
                commit = (git_state(args.directory).get("commit") or "unknown")[:12]
                output = Path(f"dlperf-bundle-{commit}.tar.gz")
            manifest = pack(args.directory, output, args.configfile, args.with_checkpoints)
            size = output.stat().st_size
            print(f"bundle: {len(manifest['files'])} files ({sum(e['bytes'] for e in manifest['files'].values()):,}"
                  f" bytes) in {output} ({size:,} bytes); redraw with: make figures BUNDLE={output}")
        elif args.command == "verify":
            manifest = verify(args.bundle)
            print(f"{args.bundle}: {len(manifest['files'])} files match its manifest (layout {manifest['layout']})")
        else:
            return figures(args.bundle, args.directory, args.cores, args.dry_run, args.force, args.snakemake_args)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
