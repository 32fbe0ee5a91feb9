"""The output paths of `bclab train` (and `bclab export`'s file): checked first, staged, committed, cleaned up.

Rules (one for every output; `bclab train --help` repeats them):
- `--out` and `--tensorboard` are new or empty folders, `--trace` a new file: nothing that
  exists is ever overwritten. No output equals another, or lies inside `--trace` or
  `--tensorboard`; `--trace` and `--tensorboard` may lie inside `--out` (then they are written
  with it, and may not take the name of one of its files).
- The nearest existing folder above each output must be a writable folder (checked by creating
  and removing a file there); missing folders are created when the outputs are written.
- Every output is written into a hidden staging folder beside it, `.bclab-<pid>-<name>.partial-*`,
  then renamed into place, so a killed run leaves only hidden staging folders. The next run
  removes those whose process is dead from its outputs' folders. If an output appears while the
  run trains, the outputs go to the next free name (`run-2`, `trace-2.npz`) and the CLI says so.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bclab.validation import invalid_value

NAME_MAX = 255  # bytes in one file name
RUN_FILES = ("config.json", "metrics.json", "metrics.csv", "result.json", "model.keras")
STAGING_PREFIX = ".bclab-"
_STAGING_NAME = re.compile(r"^\.bclab-(\d+)-")  # the owner's pid follows the prefix


@dataclass(frozen=True)
class Outputs:
    """Where one run writes: absolute paths, `trace`/`tensorboard` None when not asked for."""

    out: Path
    trace: Path | None
    tensorboard: Path | None

    def inside_out(self, path: Path | None) -> bool:
        return path is not None and path.is_relative_to(self.out)


def check_outputs(out: str, trace: str | None, tensorboard: str | None, out_flag: str = "--out") -> Outputs:
    """The outputs, after the rules of the module docstring (ValueError naming the flag)."""
    outputs = Outputs(_absolute(out), _absolute(trace), _absolute(tensorboard))
    given = {out_flag: outputs.out, "--trace": outputs.trace, "--tensorboard": outputs.tensorboard}
    for flag, path in given.items():
        if path is not None:
            _check_names(flag, path)
            _check_target(flag, path, folder=path is not outputs.trace)
    _check_relations(outputs)
    for flag, path in given.items():
        if path is not None:
            _check_writable(flag, path)
    return outputs


def check_output_file(flag: str, path: str) -> Path:
    """A new file's absolute path, after the rules above (ValueError naming `flag`)."""
    target = _absolute(path)
    _check_names(flag, target)
    _check_target(flag, target, folder=False)
    _check_writable(flag, target)
    return target


def _absolute(path: str | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(os.path.expanduser(path)))


def _check_names(flag: str, path: Path) -> None:
    """Every name in `path` fits in a folder (`NAME_MAX`, 255 bytes on Linux, macOS and Windows)."""
    for name in path.parts:
        if len(os.fsencode(name)) > NAME_MAX:
            raise invalid_value(flag, str(path), f"names of at most {NAME_MAX} bytes ({name[:20]}... is longer)")


def _check_target(flag: str, path: Path, folder: bool) -> None:
    shown = str(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise invalid_value(flag, shown, "a new or empty folder, not a file")
        if path.is_dir() and any(path.iterdir()):
            raise invalid_value(flag, shown, "a new or empty folder (this one holds files)")
    elif path.is_dir():
        raise invalid_value(flag, shown, "a file path, not a folder")
    elif path.exists() or path.is_symlink():
        raise invalid_value(flag, shown, "a new file (this one exists; bclab never overwrites an output)")


def _check_relations(outputs: Outputs) -> None:
    named = [("--trace", outputs.trace), ("--tensorboard", outputs.tensorboard)]
    for flag, path in named:
        if path is None:
            continue
        if path == outputs.out or outputs.out.is_relative_to(path):
            raise invalid_value(flag, str(path), f"a path that is neither --out nor a folder above it ({outputs.out})")
        if outputs.inside_out(path) and path.relative_to(outputs.out).parts[0] in RUN_FILES:
            raise invalid_value(flag, str(path), f"a name inside --out other than the run's files {list(RUN_FILES)}")
    trace, board = outputs.trace, outputs.tensorboard
    if trace is not None and board is not None and (trace == board or trace.is_relative_to(board)):
        raise invalid_value("--trace", str(trace), f"a path outside --tensorboard ({board})")
    if trace is not None and board is not None and board.is_relative_to(trace):
        raise invalid_value("--tensorboard", str(board), f"a path outside --trace ({trace})")


def _check_writable(flag: str, path: Path) -> None:
    """The nearest existing folder above `path` is a folder where a file can be created."""
    parent = path.parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise invalid_value(flag, str(path), f"a path whose parent is a folder ({parent} is a file)")
    try:
        fd, probe = tempfile.mkstemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise invalid_value(flag, str(path), f"a writable place ({parent}: {error.strerror})") from None


def staging_folder(target: Path) -> Path:
    """A new hidden folder beside `target` (its missing parents created), named for this process."""
    target.parent.mkdir(parents=True, exist_ok=True)
    short = os.fsencode(target.name)[:80].decode(errors="ignore")  # room for the prefix and suffix
    prefix = f"{STAGING_PREFIX}{os.getpid()}-{short}.partial-"
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    folder.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
    return folder


def commit(staged: Path, target: Path) -> Path:
    """Renames `staged` to `target`, or to the next free name when `target` appeared meanwhile
    (a file is never replaced; a folder only when empty). Returns where it went."""
    for candidate in _candidates(target):
        try:
            if staged.is_dir():
                os.rename(staged, candidate)  # fails on a non-empty folder or a file
            else:
                _move_file(staged, candidate)
            return candidate
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            continue
        except OSError as error:
            if error.errno != 39:  # ENOTEMPTY
                raise
    raise FileExistsError(f"no free name for {target}")


def _move_file(staged: Path, target: Path) -> None:
    try:
        os.link(staged, target)  # fails if the name exists: never overwrites
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: check, then rename
        if target.exists() or target.is_symlink():
            raise FileExistsError(target) from None
        os.rename(staged, target)
        return
    os.unlink(staged)


def _candidates(target: Path):
    yield target
    for n in range(2, 1000):
        yield target.with_name(f"{target.stem}-{n}{target.suffix}")


def remove_stale(folders: list[Path]) -> list[Path]:
    """Removes the hidden staging files and folders of dead bclab processes in `folders`."""
    removed = []
    for folder in dict.fromkeys(folders):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = _STAGING_NAME.match(entry.name)
            if match and not _alive(int(match.group(1))):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a pid: leave it
    return True
