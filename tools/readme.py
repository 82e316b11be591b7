#!/usr/bin/env python3
"""Regenerates every output block of README.md from the current build, so that none goes stale.

An output block is a ```text fence right after a line `<!-- run -->`. Its `$ command` lines (a
trailing backslash continues a command) are run in order with bash, in one scratch directory shared
by all blocks (so a later block can use a file an earlier one wrote), with `scratchnet` the release
build, `docs/` the repository's, and the command's stdout and stderr in the order they came. The
block becomes each command followed by what it printed. A command may stop with any exit code
(errors are part of the tour); `timeout -s INT N scratchnet …` shows an interrupt.

A ```text block right after a line `<!-- recorded -->` is output kept from a run too long to
repeat here (a training run of minutes); it is left as it is, and the text around it must say which
command made it, when and on what machine load.

A region between `<!-- begin: NAME -->` and `<!-- end: NAME -->` is replaced by what the command
`<!-- begin: NAME -->` names after a colon prints, e.g.
`<!-- begin: bench: python3 tools/bench_compare.py --threads 2 --markdown -->`; such regions run
only with --all (they take minutes and need PyTorch).

    python3 tools/readme.py            # rewrite README.md's output blocks
    python3 tools/readme.py --all      # and the measured tables
    python3 tools/readme.py --check    # run the blocks and fail if README.md differs from their
                                       # output in anything but numbers (what CI runs)
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE_START = "```text"
MARKER = "<!-- run -->"
RECORDED = "<!-- recorded -->"
REGION = re.compile(r"<!-- begin: (?P<name>[\w-]+): (?P<cmd>.+?) -->")


def commands(block):
    """The `$ ` commands of a block, continuation lines joined (as shown, and as run)."""
    cmds, current = [], None
    for line in block:
        if current is not None:
            current.append(line)
            if not line.endswith("\\"):
                cmds.append(current)
                current = None
        elif line.startswith("$ "):
            if line.endswith("\\"):
                current = [line]
            else:
                cmds.append([line])
    if current is not None:
        cmds.append(current)
    return cmds


def run(shown, work, env):
    """Runs one command (its shown lines) and returns the lines it printed."""
    text = "\n".join(shown)[2:]
    out = subprocess.run(
        ["bash", "-c", text + " 2>&1"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    ).stdout.decode()
    return out.rstrip("\n").split("\n") if out.strip() else []


def regenerate(lines, work, env, regions):
    """README lines with every marked block (and, with `regions`, every region) rerun."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        m = REGION.match(line.strip())
        if m:
            end = lines.index(f"<!-- end: {m['name']} -->", i)
            out.append(line)
            if regions:
                print(f"region {m['name']}: {m['cmd']}", file=sys.stderr)
                res = subprocess.run(m["cmd"], shell=True, cwd=ROOT, stdout=subprocess.PIPE, check=True)
                out.extend(res.stdout.decode().rstrip("\n").split("\n"))
            else:
                out.extend(lines[i + 1 : end])
            out.append(lines[end])
            i = end + 1
            continue
        if line.strip() == MARKER and i + 1 < len(lines) and lines[i + 1].strip() == FENCE_START:
            end = lines.index("```", i + 2)
            out += [line, lines[i + 1]]
            for shown in commands(lines[i + 2 : end]):
                print("running:", " ".join(shown)[2:], file=sys.stderr)
                out += shown
                out += run(shown, work, env)
            out.append("```")
            i = end + 1
            continue
        out.append(line)
        i += 1
    return out


def shape(lines):
    """Lines with every number masked and runs of equal masked lines collapsed: what must not change
    from run to run (timings, throughput, how many progress lines a fast machine prints may)."""
    masked = [re.sub(r"\d+(\.\d+)?(e-?\d+)?", "#", l).rstrip() for l in lines]
    return [l for k, l in enumerate(masked) if k == 0 or l != masked[k - 1]]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare instead of rewriting")
    p.add_argument("--all", action="store_true", help="also rerun the measured tables (minutes; PyTorch)")
    a = p.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    env = dict(os.environ, PATH=f"{ROOT / 'target/release'}:{os.environ['PATH']}", COLUMNS="100")
    lines = README.read_text().split("\n")
    with tempfile.TemporaryDirectory() as work:
        os.symlink(ROOT / "docs", pathlib.Path(work) / "docs")
        (pathlib.Path(work) / "runs").mkdir()
        new = regenerate(lines, work, env, a.all and not a.check)
    if a.check:
        unmarked = [k + 1 for k, l in enumerate(lines)
                    if l.strip() == FENCE_START
                    and (k == 0 or lines[k - 1].strip() not in (MARKER, RECORDED))]
        if unmarked:
            sys.exit(f"README.md lines {unmarked}: a ```text block without {MARKER} (or {RECORDED}) "
                     "above it (output must come from a run; show commands alone in a ```sh block)")
        old_shape, new_shape = shape(lines), shape(new)
        if old_shape != new_shape:
            import difflib

            diff = difflib.unified_diff(old_shape, new_shape, "README.md", "regenerated", lineterm="")
            print("\n".join(diff))
            print("README.md is stale: run python3 tools/readme.py", file=sys.stderr)
            sys.exit(1)
        print("README.md output blocks match the current build (numbers aside)")
        return
    README.write_text("\n".join(new))
    print("README.md regenerated", file=sys.stderr)


if __name__ == "__main__":
    main()
