"""File modes for what the workbench writes for people to share (reports, exports, NLA checkpoints): they
follow the user's umask, like any file a program creates. Temporary files (``mkstemp``) and some writers
(safetensors) create files readable by the owner only; :func:`share` gives them the ordinary mode."""

from __future__ import annotations

import os
from pathlib import Path


def umask() -> int:
    """The process's umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share(path: Path) -> None:
    """Give ``path`` the mode a newly created file or directory gets under the user's umask (0644 / 0755
    under the usual 022); a directory's contents too."""
    path = Path(path)
    mask = umask()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
        os.chmod(path, 0o777 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)
