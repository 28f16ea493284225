"""Which store a ``--dnn-store`` value names, and how a store's URL is shown (its password masked).

Pure: no SQLAlchemy, no pytest. The session uses these before anything else of the store is imported.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = [
    "DEFAULT_PATH",
    "MASK",
    "StoreError",
    "is_sqlite",
    "mask_text",
    "mask_url",
    "password_of",
    "resolve_url",
]

#: The embedded store, under the rootdir, where ``--dnn-store`` is given without a value.
DEFAULT_PATH = Path(".dnnbench") / "history.sqlite"
#: What stands for a password wherever a URL is shown.
MASK = "***"
#: Query parameters that hold a secret (libpq's ``password``, ``sslpassword``...).
_SECRET_PARAMS = frozenset({"password", "sslpassword", "pass", "pwd", "secret", "token"})
#: ``scheme://user:password@``, for text no URL parser accepts.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):[^@\s]*@")
_SECRET_QUERY = re.compile(r"(?i)(?P<head>[?&;](?:" + "|".join(sorted(_SECRET_PARAMS)) + r")=)[^&;\s]*")


class StoreError(Exception):
    """A store that cannot be used: what is wrong and how to fix it, naming the store by its masked URL.

    ``str()`` is ``results store URL: why. Fix``; the parts are kept (``url``, ``why``, ``fix``) so that the
    session can say it in its own usage-error shape (``--dnn-store=URL: why. Fix``)."""

    def __init__(self, url: str, why: str, fix: str = "") -> None:
        self.url = mask_url(url)
        password = password_of(url)
        self.why = mask_text(why, password)
        self.fix = mask_text(fix, password)
        super().__init__(f"results store {self.url}: {self.why}" + (f". {self.fix}" if self.fix else ""))


def resolve_url(value: str | None, rootdir: Path, *, relative_to: Path | None = None) -> str:
    """The SQLAlchemy URL of the store that ``--dnn-store`` (or ``dnn_store``, ``DNNBENCH_STORE``) names.

    - None or empty (the option given without a value): ``sqlite:///<rootdir>/.dnnbench/history.sqlite``;
    - ``sqlite:///PATH`` (and a plain path, without ``://``): that SQLite file; a relative path is relative to
      ``relative_to`` (the rootdir where not given), so that the store does not follow the working directory;
      ``sqlite://`` alone is a store in memory (for tests: gone with the process);
    - ``postgresql://...`` (and ``postgres://``): the server, through psycopg 3 (``postgresql+psycopg://``);
      a URL that names its driver (``postgresql+psycopg://``) is kept as it is; so is any other URL (SQLAlchemy
      says later whether it knows it).
    """
    base = relative_to if relative_to is not None else rootdir
    text = (value or "").strip()
    if not text:
        return _sqlite_url(rootdir / DEFAULT_PATH)
    if "://" not in text:
        path = Path(text).expanduser()
        return _sqlite_url(path if path.is_absolute() else base / path)
    scheme, rest = text.split("://", 1)
    lowered = scheme.lower()
    if lowered in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if lowered == "sqlite":
        if not rest.startswith("/") or rest == "/" or rest.startswith("/file:") or rest.startswith("/:memory:"):
            return text  # memory, or an SQLite URI (sqlite:///file:PATH?mode=ro&uri=true)
        path_part, sep, query = rest[1:].partition("?")
        path = Path(path_part).expanduser()
        resolved = path if path.is_absolute() else base / path
        return _sqlite_url(resolved) + (sep + query if sep else "")
    return text


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite store."""
    return url.split("://", 1)[0].lower().split("+", 1)[0] == "sqlite"


def _split(url: str) -> tuple[str, str | None, str | None, str, str]:
    """``url`` as (``scheme://``, user, password, the rest up to the query, the query with its ``?``).

    The user part is everything before the last ``@`` of the part after ``://`` (a password with an unquoted
    ``/`` or ``@`` is masked whole); a part that starts with ``/`` (``sqlite:///PATH``) has none."""
    head, sep, query = url.partition("?")
    if "://" not in head:
        return "", None, None, head, sep + query
    scheme, rest = head.split("://", 1)
    if rest.startswith("/") or "@" not in rest:
        return scheme + "://", None, None, rest, sep + query
    userinfo, host = rest.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    return scheme + "://", user, password if colon else None, "@" + host, sep + query


def password_of(url: str) -> str | None:
    """The password in ``url`` (in its user part or a query parameter), or None."""
    _, _, password, _, query = _split(url)
    if password:
        return unquote(password)
    for piece in re.split(r"[&;]", query.lstrip("?")):
        key, eq, value = piece.partition("=")
        if eq and key.lower() in _SECRET_PARAMS and value:
            return unquote(value)
    return None


def mask_url(url: str) -> str:
    """``url`` as it may be shown (messages, results file, report): the password replaced by ``***``.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; a password in the query
    (``?password=secret``) too. The driver this plugin picks for PostgreSQL is left out, as the user wrote the
    URL (``postgresql+psycopg://`` -> ``postgresql://``); nothing else changes."""
    scheme, user, password, rest, query = _split(url)
    if scheme.lower() == "postgresql+psycopg://":
        scheme = "postgresql://"
    userinfo = "" if user is None else user + (f":{MASK}" if password is not None else "")
    if query:
        query = _SECRET_QUERY.sub(rf"\g<head>{MASK}", query)
    return scheme + userinfo + rest + query


def mask_text(text: str, password: str | None) -> str:
    """``text`` (a driver's message) with every URL's password and the password itself masked.

    The password is replaced wherever it appears as it is written and as it is quoted in a URL; one of fewer
    than 4 characters is replaced only inside URLs (replacing every ``a`` of a message would make it
    unreadable, and drivers do not echo passwords)."""
    out = _SECRET_QUERY.sub(rf"\g<head>{MASK}", _USERINFO.sub(rf"\g<head>:{MASK}@", text))
    if password and len(password) >= 4:
        for form in {password, quote(password, safe="")}:
            out = out.replace(form, MASK)
    return out
