"""The `livestyle` command. Subcommands register in `build_parser`; each is a function
(args) -> exit code, so adding one is a parser entry and a function.

Bad input (LivestyleError) prints one line "livestyle: path: problem" on stderr and
exits 1: a user sees what to fix, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from livestyle.errors import LivestyleError


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Check every file of a release bundle against its manifest."""
    from livestyle.bundle import bundle_summary, verify_bundle

    problems = verify_bundle(args.bundle)
    if problems:
        for p in problems:
            print(f"{args.bundle}: {p}")
        print(f"FAILED: {args.bundle}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    s = bundle_summary(args.bundle)
    print(f"OK: {args.bundle}: version {s['version']}, {len(s['styles'])} style(s) ({', '.join(s['styles'])}), {s['files']} files, {s['bytes']} bytes verified")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from livestyle import __version__

    parser = argparse.ArgumentParser(prog="livestyle", description="Paintings into real-time video filters.")
    parser.add_argument("--version", action="version", version=f"livestyle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verify-bundle", help="check a release bundle's checksums and manifest", description=cmd_verify_bundle.__doc__)
    p.add_argument("bundle", metavar="BUNDLE", help="release zip, e.g. data/release/livestyle-0.1.0.zip")
    p.set_defaults(func=cmd_verify_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LivestyleError as exc:
        print(f"livestyle: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
