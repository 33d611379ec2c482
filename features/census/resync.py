"""Reading on past a break in a return: where it is in the file, and where the next ``<Child>`` starts.

When the XML parser stops (a byte that is not UTF-8, a NUL, an unescaped ``&``, a broken tag, a truncated file),
the children before the break are already read. The file is then scanned as bytes, a chunk at a time, for the
``<Child>`` start tags: parsing resumes at the one after the child the break is in (the parser may notice a break
only later: a stray ``<Child>`` swallows the children after it), or at the next child when the break lies between
two inside a ``<Message><Children>`` of its own, under
the file's own XML declaration. Markup is ASCII in every encoding this works for (UTF-8 and its single-byte
relatives); a UTF-16 or UTF-32 return is not resumed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Final

from features.census.schema import CHILD, CHILDREN, MESSAGE

__all__ = ["Resumed", "byte_offset", "child_id_at", "child_starts", "line_of", "resume_prefix"]

_CHUNK: Final = 1 << 16
_CHILD_START: Final = re.compile(rb"<" + CHILD.tag.encode() + rb"[\s/>]")
_OVERLAP: Final = len(CHILD.tag) + 2
_DECLARATION: Final = re.compile(rb"(?:\xef\xbb\xbf)?\s*(<\?xml[^>]{0,200}\?>)")
_ID: Final = re.compile(rb"<LAchildID>\s*([^<]{1,100}?)\s*</LAchildID>")
_CONTROL: Final = re.compile(r"[\x00-\x1f]")


def resume_prefix(path: Path) -> bytes | None:
    """What the resumed part is parsed under: the file's declaration and an opening Message and Children.

    None when the file is not in an ASCII-compatible encoding (a BOM or declaration says UTF-16 or UTF-32).
    """
    with path.open("rb") as stream:
        head = stream.read(256)
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")) or b"\x00<\x00" in head:
        return None
    match = _DECLARATION.match(head)
    declaration = match.group(1) if match else b""
    if re.search(rb"encoding\s*=\s*[\"']\s*utf-?(16|32)", declaration, re.IGNORECASE):
        return None
    return declaration + f"<{MESSAGE.tag}><{CHILDREN.tag}>".encode()


def byte_offset(path: Path, base: int, skip: int, line: int, column: int) -> int:
    """The file offset of the parser's (line, column) in a stream of ``skip`` bytes of prefix then the file from
    ``base``; the prefix holds no line break. Never before ``base``."""
    with path.open("rb") as stream:
        stream.seek(base)
        at, lines = base, 1
        while lines < line:
            chunk = stream.read(_CHUNK)
            if not chunk:
                return at
            i = -1
            while lines < line:
                i = chunk.find(b"\n", i + 1)
                if i < 0:
                    break
                lines += 1
            if lines == line:
                return at + i + 1 + max(column - 1, 0)
            at += len(chunk)
    return max(base, base + column - 1 - skip)


def child_starts(path: Path, count: int) -> list[int]:
    """The offsets of the file's first ``count`` Child start tags (fewer when it has fewer)."""
    found: list[int] = []
    with path.open("rb") as stream:
        at, tail = 0, b""
        while len(found) < count:
            chunk = stream.read(_CHUNK)
            data = tail + chunk
            origin = at - len(tail)
            limit = len(data) if not chunk else max(len(data) - _OVERLAP, 0)
            for match in _CHILD_START.finditer(data):
                if match.start() >= limit or len(found) == count:
                    break
                found.append(origin + match.start())
            if not chunk:
                break
            tail = data[limit:]
            at += len(chunk)
    return found


def child_id_at(path: Path, offset: int) -> str | None:
    """The LAchildID of the child starting at ``offset``, when it can be read plainly (UTF-8, no control
    characters, within its first 8 KiB); None otherwise: the child is then named by its position."""
    with path.open("rb") as stream:
        stream.seek(offset)
        data = stream.read(8192)
    following = _CHILD_START.search(data, 1)
    match = _ID.search(data, 0, following.start() if following else len(data))
    if match is None:
        return None
    try:
        text = match.group(1).decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text if text and not _CONTROL.search(text) and "&" not in text else None


class Resumed:
    """A binary stream: ``prefix``, then the file from ``offset`` on."""

    def __init__(self, stream: IO[bytes], prefix: bytes, offset: int) -> None:
        self._stream = stream
        self._prefix = prefix
        stream.seek(offset)

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            head = self._prefix if size < 0 else self._prefix[:size]
            self._prefix = self._prefix[len(head) :]
            if size < 0:
                return head + self._stream.read()
            return head
        return self._stream.read(size)


def line_of(path: Path, offset: int) -> int:
    """The 1-based line of the file that ``offset`` is on."""
    lines, at = 1, 0
    with path.open("rb") as stream:
        while at < offset:
            chunk = stream.read(min(_CHUNK, offset - at))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            at += len(chunk)
    return lines
