"""Checks that a set of pinned requirement files is a complete lock.

    python lock_check.py --compiled resolved.txt requirements.txt more.txt ...

`resolved.txt` is what `uv pip compile` made of the same files. Every package the
resolution needs must be pinned in one of the files, at the version it resolved to;
otherwise an image build would quietly pull an unpinned (or different) version.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def canonical(name: str) -> str:
    """The PEP 503 form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by canonical name."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def problems(compiled: dict[str, str], pinned: dict[str, str]) -> list[str]:
    """What the resolution needs that the pins do not say, one line each."""
    out = []
    for name, version in sorted(compiled.items()):
        if name not in pinned:
            out.append(f"{name}=={version} is needed but pinned in none of the files")
        elif pinned[name] != version:
            out.append(f"{name} is pinned at {pinned[name]} but resolves to {version}")
    return out


def main(argv: list[str] | None = None) -> int:
    """0 when the files pin everything the resolution needs, 1 with the differences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", type=Path, required=True)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    pinned: dict[str, str] = {}
    for path in args.files:
        pinned.update(pins(path))
    found = problems(pins(args.compiled), pinned)
    for line in found:
        print(f"lock_check: {line}", file=sys.stderr)
    if not found:
        print(f"ok: {len(pinned)} pins in {', '.join(p.name for p in args.files)} are a complete lock")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
