"""``make demo``: a whole session on a real published package.

1. Downloads the sdist of python-dateutil 2.9.0.post0 from PyPI (the registry's JSON
   simple API, PEP 691; the sha256 is checked), unpacks it into a temporary folder and
   makes it a git repository with one commit.
2. Starts a mesh there (its own state dir and free ports, so it never meets your mesh)
   with a team of three ``command`` workers that run real tools on their scope:
   ``ruff check --fix --select UP,I {scope}`` then ``ruff format {scope}``.
3. Submits "Modernize syntax and sort imports across the codebase", approved up front,
   and follows it live; then prints the outcome, the session branch with its diff
   statistics, and the report paths, and stops the mesh.

Usage: ``python scripts/demo.py [--clean] [--workdir DIR]``. Exit code: 0 when the
session completed, 9 when it failed, 3 when the download or the set-up failed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PACKAGE = "python-dateutil"
VERSION = "2.9.0.post0"
INDEX = "https://pypi.org/simple"
REQUEST = "Modernize syntax and sort imports across the codebase"
BIN = Path(sys.executable).parent  # the venv's bin: ap and ruff
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ap-actors demo",
    "GIT_AUTHOR_EMAIL": "demo@ap-actors.invalid",
    "GIT_COMMITTER_NAME": "ap-actors demo",
    "GIT_COMMITTER_EMAIL": "demo@ap-actors.invalid",
}


class DemoError(Exception):
    """The demo could not be set up (download, unpack, git)."""


def fetch_sdist(package: str = PACKAGE, version: str = VERSION, index: str = INDEX) -> bytes:
    """Download an sdist from a PEP 691 index and check its sha256.

    Raises:
        DemoError: the index or the file cannot be fetched, the release has no sdist,
            or the hash does not match.
    """
    wanted = {f"{package}-{version}.tar.gz", f"{package.replace('-', '_')}-{version}.tar.gz"}
    request = urllib.request.Request(
        f"{index}/{package}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            files = json.load(r)["files"]
        entry = next((f for f in files if f["filename"] in wanted), None)
        if entry is None:
            raise DemoError(f"{package} {version} has no sdist on {index}")
        with urllib.request.urlopen(entry["url"], timeout=120) as r:
            data: bytes = r.read()
    except OSError as e:
        raise DemoError(f"cannot download {package} {version} from {index}: {e}") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["hashes"]["sha256"]:
        raise DemoError(f"{entry['filename']}: sha256 {digest} does not match the index")
    return data


def prepare_repo(dest: Path, sdist: bytes | None = None) -> Path:
    """Unpack the sdist into ``dest`` and commit it on ``main``; return ``dest``."""
    data = sdist if sdist is not None else fetch_sdist()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp, filter="data")
        (top,) = Path(tmp).iterdir()
        shutil.copytree(top, dest)
    env = {**os.environ, **GIT_ENV}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--no-verify", "-m", f"{PACKAGE} {VERSION} from its sdist"],
    ):
        done = subprocess.run(argv, cwd=dest, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise DemoError(f"{' '.join(argv)} failed in {dest}: {done.stderr.strip()}")
    return dest


def write_team(path: Path, workers: int = 3) -> Path:
    """Write the demo team: ``workers`` command workers running ruff on their scope."""
    ruff = shutil.which("ruff", path=str(BIN)) or shutil.which("ruff") or "ruff"
    lines = ["max_attempts = 2", "objective_timeout_s = 300", ""]
    for n in range(1, workers + 1):
        lines += [
            "[[workers]]",
            f'id = "ruff-{n}"',
            'agent = "command"',
            'capabilities = ["python"]',
            "commands = [",
            f'  "{ruff} check --fix --exit-zero --no-cache --select UP,I {{scope:*.py}}",',
            f'  "{ruff} format --no-cache {{scope:*.py}}",',
            "]",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def write_config(path: Path) -> Path:
    """Write an ap.toml on free loopback ports (the demo never meets a running mesh)."""
    path.write_text(
        "[mesh]\n"
        'ingest = "tcp://127.0.0.1:*"\nbus = "tcp://127.0.0.1:*"\nreplay = "tcp://127.0.0.1:*"\n'
        'dashboard = "http://127.0.0.1:*/"\n'
    )
    return path


def ap(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``ap`` command of this venv, its output going to the terminal."""
    done = subprocess.run([str(BIN / "ap"), *args], text=True)
    if check and done.returncode != 0:
        raise DemoError(f"ap {' '.join(args)} exited with {done.returncode}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None, help="folder to work in (default: a temp dir)")
    parser.add_argument("--clean", action="store_true", help="remove the folder afterwards")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ap-demo-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    state = work / "state"
    try:
        print(f"demo: downloading {PACKAGE} {VERSION} (sdist) into {work / 'repo'}", flush=True)
        repo = prepare_repo(work / "repo")
        team = write_team(work / "team.toml")
        config = write_config(work / "ap.toml")
        ap(
            "up",
            "--detach",
            "--state-dir",
            str(state),
            "--config",
            str(config),
            "--team",
            str(team),
        )
    except DemoError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 3
    try:
        print(f'demo: submitting "{REQUEST}"', flush=True)
        done = ap(
            "submit",
            REQUEST,
            "--repo",
            str(repo),
            "--approve",
            "--wait",
            "--state-dir",
            str(state),
            check=False,
        )
        sessions = subprocess.run(
            [str(BIN / "ap"), "sessions", "--json", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        if sessions:
            branch = json.loads(sessions[-1])["branch"]
            if branch:
                stat = subprocess.run(
                    ["git", "diff", "--shortstat", f"main..{branch}"],
                    cwd=repo,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                print(f"demo: {branch} in {repo}: {stat}")
                print(f"demo: look at it with: git -C {repo} log --oneline --graph {branch}")
        return done.returncode
    finally:
        ap("down", "--state-dir", str(state), check=False)
        if args.clean:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"demo: everything is in {work} (remove it when done, or pass --clean)")


if __name__ == "__main__":
    sys.exit(main())
