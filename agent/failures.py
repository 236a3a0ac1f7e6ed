"""The one-line reply for a turn that failed: what failed, and for an unreachable Chroma server how
to start one (the traceback goes to the log file only)."""

from __future__ import annotations

from fusionrec import logs
from fusionrec.config import Config
from fusionrec.retrieval.config import parse_server_url
from fusionrec.text import one_line


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, outermost first."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


_HTTP_CLIENTS = {"httpx", "httpcore", "urllib3", "requests"}


def _network_problem(exc: BaseException) -> bool:
    """A refused, reset or timed-out connection (the socket's own errors or an HTTP client's)."""
    module = type(exc).__module__.partition(".")[0]
    return isinstance(exc, ConnectionError | TimeoutError) or module in _HTTP_CLIENTS


def failure_text(exc: BaseException, cfg: Config) -> str:
    """One line naming what failed in a turn: the project's own error message when one was raised
    (it names the file, key or URL), else the exception's type and text; a connection problem with
    a Chroma server names `retrieval.server_url` and how to start a server."""
    chain = _chain(exc)
    ours = next((e for e in chain if logs.is_project_error(e)), None)
    text = one_line(str(ours) if ours is not None else f"{type(exc).__name__}: {exc}", limit=300)
    url = cfg.retrieval.server_url.strip()
    if url and any(_network_problem(e) for e in chain) and not (url in text and "chroma run" in text):
        try:
            host, port, _ = parse_server_url(url)
        except ValueError:
            host, port = "localhost", 8000
        where = "" if host in {"localhost", "127.0.0.1"} else f" --host {host}"
        text = (
            f"cannot reach the Chroma server at {url} (retrieval.server_url; {text}); "
            f"start one with: chroma run --path {cfg.chroma_dir}{where} --port {port}"
        )
    return text
