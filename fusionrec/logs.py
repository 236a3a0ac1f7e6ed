"""Where diagnostics go: everything into ``<paths.home>/logs/fusionrec.log`` (size-bounded, rotated);
on the terminal only the project's own warnings, one line each, unless ``--verbose``.

`setup` is called once per command by the CLI. Library warnings (``warnings.warn``, e.g. Pillow's
DecompressionBombWarning, and the transformers / huggingface_hub loggers, whose own stderr handlers
are removed as they are imported) go to the file; `--verbose` prints them and every traceback too.
`log_traceback` records a failure's traceback for the file only (the caller shows its own line),
and `report_failure` turns an exception that reached the top of a command into one line.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import sys
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import ModuleType
from typing import Any

from fusionrec.text import one_line

LOG_FILE = Path("logs") / "fusionrec.log"  # under paths.home
MAX_BYTES = 2_000_000  # per file; the log keeps BACKUPS older files beside it
BACKUPS = 3
PACKAGES = frozenset({"fusionrec"})  # every module of ours is fusionrec.<...>
FILE_ONLY = "fusionrec_file_only"  # a record attribute: the terminal shows it only with --verbose
_LIBRARY_LOGGERS = ("transformers.utils.logging", "huggingface_hub.utils.logging")

_FILE_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
_handlers: list[logging.Handler] = []


def _ours(record: logging.LogRecord) -> bool:
    return record.name.partition(".")[0] in PACKAGES or record.name == "__main__"


class _FileHandler(RotatingFileHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """A full disk or a vanished home never turns into a traceback on the terminal."""


class _Console(logging.StreamHandler):
    """Writes to the current sys.stderr (a redirected or captured stream works too)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """A closed terminal (broken pipe) is not worth a traceback."""


class _Brief(logging.Formatter):
    """The message alone (warnings and errors prefixed with their level), never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


def _console_filter(verbose: bool) -> Callable[[logging.LogRecord], bool]:
    def keep(record: logging.LogRecord) -> bool:
        return verbose or (_ours(record) and not getattr(record, FILE_ONLY, False))

    return keep


def _file_filter(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or _ours(record)  # libraries' info chatter stays out


def setup(home: Path, verbose: bool = False) -> Path | None:
    """Route logging and warnings for one command; returns the log file (None when the home is unusable).

    Calling it again (tests run several commands in one process) replaces the handlers it added.
    """
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()
    console = _Console()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.addFilter(_console_filter(verbose))
    console.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose else _Brief()
    )
    _handlers.append(console)
    path: Path | None = Path(home) / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
        handler = _FileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
    except OSError:
        path = None
    else:
        handler.setLevel(logging.INFO)
        handler.addFilter(_file_filter)
        handler.setFormatter(logging.Formatter(_FILE_FORMAT))
        _handlers.append(handler)
    for handler in _handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    for name in _LIBRARY_LOGGERS:
        _after_import(name, _propagate_only)
    return path


def log_traceback(logger: logging.Logger, message: str, *args: Any) -> None:
    """Log the exception being handled, traceback included, for the log file (terminal: --verbose only)."""
    logger.error(message, *args, exc_info=True, extra={FILE_ONLY: True})


def is_project_error(exc: BaseException) -> bool:
    """True for the project's own error classes: raised on purpose, they name the file, key or URL."""
    return type(exc).__module__.partition(".")[0] in PACKAGES


def is_user_error(exc: BaseException) -> bool:
    """A project error or an OS error (a missing or unwritable path); anything else is internal."""
    return is_project_error(exc) or isinstance(exc, OSError)


def report_failure(exc: BaseException, log_file: Path | None, verbose: bool = False) -> int:
    """Log `exc` with its traceback, print one `error:` line; exit code 2 (user error) or 1 (internal)."""
    user = is_user_error(exc)
    logging.getLogger("fusionrec.cli").error(
        "command failed", exc_info=(type(exc), exc, exc.__traceback__), extra={FILE_ONLY: True}
    )
    what = str(exc).strip() if user else f"internal error: {type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.filename and exc.strerror:  # "PATH: Permission denied"
        what = f"{exc.filename}: {exc.strerror}"
    where = f"details in {log_file}" if log_file else "no log file could be written"
    if not verbose:
        where += "; rerun with --verbose to print them" if log_file else "; rerun with --verbose for details"
    print(f"error: {one_line(what or type(exc).__name__)} ({where})", file=sys.stderr, flush=True)
    return 2 if user else 1


# --- libraries that bring their own stderr handler ---------------------------------------------------
def _propagate_only(module: ModuleType) -> None:
    """A library's logging module: drop its stderr handler, let its records reach ours."""
    if hasattr(module, "disable_default_handler"):  # transformers keeps the handler it made
        module.disable_default_handler()
        module.enable_propagation()
        return
    library = logging.getLogger(module.__name__.partition(".")[0])
    for handler in list(library.handlers):
        if type(handler) is logging.StreamHandler:
            library.removeHandler(handler)
    library.propagate = True


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `then(module)` right after the module `name` is first executed, then leaves sys.meta_path."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is not None and (spec := find(fullname, path, target)) is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            with contextlib.suppress(Exception):
                self.then(module)

        loader.exec_module = exec_module
        return spec


def _after_import(name: str, then: Callable[[ModuleType], None]) -> None:
    """`then(module)` now if `name` is imported already, else right after its import."""
    if name in sys.modules:
        with contextlib.suppress(Exception):
            then(sys.modules[name])
        return
    if not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, then))
