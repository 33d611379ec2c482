"""The prolog of a return, read before any XML parser sees it: a DTD or entity declaration is refused there.

The bytes are decoded just enough to find the root element's name (BOMs for UTF-16 and UTF-32; markup is ASCII in
every ASCII-compatible encoding), reading past the XML declaration, comments and processing instructions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

from features.census.problems import IngestError
from features.census.schema import MESSAGE
from features.census.values import show

__all__ = ["opened"]


_PROLOG_LIMIT: Final = 1 << 20
_ROOT_NAME: Final = re.compile(r"[^\W\d][\w.:-]*")


class _NeedMoreError(Exception):
    """The prolog goes on past the bytes read so far."""


def _root_name(text: str, at_end: bool) -> str:
    """The root element's name, reading past the XML declaration, comments and processing instructions.

    Raises _NeedMoreError when ``text`` stops inside the prolog, ValueError when the prolog is not acceptable.
    """
    i, size = 0, len(text)
    while True:
        while i < size and text[i] in " \t\r\n":
            i += 1
        if i == size:
            if at_end:
                raise ValueError("the file is empty" if not text.strip() else "it ends before any element")
            raise _NeedMoreError
        if size - i < 4 and not at_end:
            raise _NeedMoreError  # too short to tell a comment from a declaration
        if text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            if end < 0:
                raise _NeedMoreError
            i = end + 3
        elif text.startswith("<?", i):
            end = text.find("?>", i + 2)
            if end < 0:
                raise _NeedMoreError
            i = end + 2
        elif text.startswith("<!", i):  # <!DOCTYPE, <!ENTITY or worse: nothing else may stand before the root
            raise ValueError(
                "refused: DTD and entity declarations are not allowed in a CIN return "
                f"(found {show(text[i : i + 12])} before the root element)"
            )
        elif text.startswith("<", i):
            match = _ROOT_NAME.match(text, i + 1)
            if match is None:
                raise ValueError(f"not an XML document: {show(text[i : i + 20])} where an element should start")
            if match.end() == size and not at_end:
                raise _NeedMoreError  # the name may go on in the next chunk
            return match.group()
        else:
            raise ValueError(f"not an XML document: it starts with {show(text[i : i + 20])}")


def _sniff_root(path: Path, stream: IO[bytes]) -> str:
    """Read the prolog and return the root element's name; a DTD is refused before the XML parser sees it."""
    data = b""
    while True:
        chunk = stream.read(65536)
        data += chunk
        try:
            return _root_name(_decode_prolog(data), at_end=not chunk)
        except _NeedMoreError:
            if not chunk:
                raise IngestError(f"{path}: not an XML document: it ends before the root element") from None
            if len(data) > _PROLOG_LIMIT:
                raise IngestError(
                    f"{path}: not a CIN return: no root element in the first {_PROLOG_LIMIT} bytes"
                ) from None
        except ValueError as exc:
            raise IngestError(f"{path}: {exc}") from None


def _decode_prolog(data: bytes) -> str:
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="ignore")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("latin-1")  # markup is ASCII in every ASCII-compatible encoding


@contextmanager
def opened(path: Path) -> Iterator[IO[bytes]]:
    """The file, its prolog checked (no DTD, root <Message>) and rewound; OSError becomes IngestError."""
    try:
        with path.open("rb") as stream:
            root_name = _sniff_root(path, stream)
            if root_name != MESSAGE.tag:
                raise IngestError(
                    f"{path}: not a CIN census return: the root element is <{root_name}>, not <{MESSAGE.tag}>"
                )
            stream.seek(0)
            yield stream
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
