"""Wait until a file exists, woken by inotify (no polling): ``python gate.py PATH``.

The stand-in agents of the end-to-end tests run it to hold until the test opens their
gate (creates ``PATH``). The watch on the parent directory is set before the file is
looked for, so a gate opened in between is not missed. Exit 0 once the file exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

from inotify_simple import INotify, flags


def wait_for(path: Path) -> None:
    """Return once ``path`` exists (its parent directory must exist)."""
    with INotify() as inotify:
        inotify.add_watch(path.parent, flags.CREATE | flags.MOVED_TO)
        while not path.exists():
            inotify.read()  # blocks until a name appears in the directory


if __name__ == "__main__":
    wait_for(Path(sys.argv[1]))
