"""Validated case records as Parquet: a schema derived from the record model, written by ingestion, read back whole.

``closure-risk ingest --parquet`` writes every record it kept (each validated once with the census rules) as one row
of a Parquet file whose columns mirror ``features.record`` field by field: nested models are structs, lists of them
``list<struct>``, dates ``date32``, codes strings. The file's metadata says that its records were validated, by which
rules (``RULES_VERSION``, a digest of the modules that define the record and its rules) and by which version of the
project. A reader that finds the same rules builds the record objects straight from the columns, without checking
them again (``read_validated``); any other file (no marker, other rules) is read as dictionaries for the caller to
validate (``read_rows``). Neither path ever puts a value into an error message.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import importlib.metadata
import itertools
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from features.decode import record_decoder
from features.record import ChildRecord

__all__ = [
    "PARQUET_MAGIC",
    "RECORD_SCHEMA",
    "RecordFile",
    "RecordFileError",
    "is_parquet",
    "open_record_file",
    "read_rows",
    "read_validated",
    "records_table",
    "rules_version",
    "write_records_parquet",
]

PARQUET_MAGIC: Final = b"PAR1"
ROW_GROUP: Final = 2_000  # records per row group: the unit a worker reads (about a JSON-lines chunk)
_VALIDATED, _RULES, _WRITER = b"closure_risk.validated", b"closure_risk.rules_version", b"closure_risk.version"
# The modules whose code decides whether a record is valid: any change to them is another ruleset.
_RULE_MODULES = ("record.py", "extension.py", "validation.py", "codes.py")


class RecordFileError(ValueError):
    """A Parquet file of records that cannot be read as one (unreadable, corrupt, or another schema)."""


@functools.cache
def rules_version() -> str:
    """A digest of the source of the record model and its census rules (the same code, the same digest)."""
    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent
    for name in _RULE_MODULES:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def _project_version() -> str:
    try:
        return importlib.metadata.version("case-closure-risk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """The Arrow type of a field's annotation, and whether it may be null."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _arrow_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"no Arrow type for {annotation!r}")
        return _arrow_type(args[0])[0], True
    if origin is list:
        item, nullable = _arrow_type(typing.get_args(annotation)[0])
        return pa.list_(pa.field("item", item, nullable=nullable)), False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _struct(annotation), False
    if annotation is bool:
        return pa.bool_(), False
    if annotation is int:
        return pa.int32(), False
    if annotation is dt.date:
        return pa.date32(), False
    if isinstance(annotation, type) and issubclass(annotation, str):  # str and the code lists (StrEnum)
        return pa.string(), False
    raise TypeError(f"no Arrow type for {annotation!r}")


def _fields(model: type[BaseModel]) -> list[pa.Field]:
    out = []
    for name, info in model.model_fields.items():
        kind, nullable = _arrow_type(info.annotation)
        out.append(pa.field(name, kind, nullable=nullable))
    return out


def _struct(model: type[BaseModel]) -> pa.StructType:
    return pa.struct(_fields(model))


RECORD_SCHEMA: Final = pa.schema(_fields(ChildRecord))


def records_table(records: Iterable[ChildRecord]) -> pa.Table:
    """Validated records as one Arrow table of ``RECORD_SCHEMA``."""
    return pa.Table.from_pylist([r.model_dump() for r in records], schema=RECORD_SCHEMA)


def _metadata() -> dict[bytes, bytes]:
    return {_VALIDATED: b"true", _RULES: rules_version().encode(), _WRITER: _project_version().encode()}


def write_records_parquet(records: Iterable[ChildRecord] | pa.Table, path: Path) -> int:
    """Write validated records (or a table ``records_table`` made of them) to ``path``; returns the rows written.

    The file is written beside ``path`` and renamed onto it once complete, so a crash leaves no half file there."""
    schema = RECORD_SCHEMA.with_metadata(_metadata())
    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        for table in _tables(records):
            writer.write_table(table.replace_schema_metadata(schema.metadata), row_group_size=ROW_GROUP)
            rows += table.num_rows
    partial.replace(path)
    return rows


def _tables(records: Iterable[ChildRecord] | pa.Table) -> Iterator[pa.Table]:
    if isinstance(records, pa.Table):
        if not records.schema.equals(RECORD_SCHEMA):
            raise ValueError("the table's schema is not the record schema")
        yield records
        return
    batch: list[ChildRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) == ROW_GROUP:
            yield records_table(batch)
            batch = []
    if batch:
        yield records_table(batch)


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file: by its name (``*.parquet``), else by its first four bytes."""
    if path.suffix.lower() == ".parquet":
        return True
    try:
        with path.open("rb") as stream:
            return stream.read(4) == PARQUET_MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class RecordFile:
    """An opened Parquet file of records: how it is cut, and whether its records may be read without checks."""

    path: Path
    rows: int
    row_groups: int
    validated: bool  # marked validated by these very rules: read_validated may be used
    refusal: str | None  # why it may not, when it may not


def open_record_file(path: Path) -> RecordFile:
    """Read ``path``'s footer: its size, its row groups and whether it is marked validated by these rules.

    Raises ``RecordFileError`` for a file that is not Parquet or is damaged, and for one whose columns are not the
    record's."""
    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        raise RecordFileError(f"{path.name} is not a readable Parquet file ({_reason(exc)})") from None
    required = [name for name, info in ChildRecord.model_fields.items() if info.is_required()]
    missing = [name for name in required if name not in schema.names]
    if missing:
        raise RecordFileError(f"{path.name} is not a file of case records: no column {missing[0]!r}")
    found = schema.metadata or {}
    refusal = None
    if found.get(_VALIDATED) != b"true":
        refusal = f"{path.name} is not marked as validated by closure-risk ingest --parquet"
    elif found.get(_RULES) != rules_version().encode():
        theirs = found.get(_RULES, b"none").decode(errors="replace")
        refusal = f"{path.name} was validated by other census rules ({theirs}; these are {rules_version()})"
    elif not schema.remove_metadata().equals(RECORD_SCHEMA):
        refusal = f"{path.name} is marked validated but its columns are not this version's record schema"
    return RecordFile(path=path, rows=meta.num_rows, row_groups=meta.num_row_groups, validated=refusal is None,
                      refusal=refusal)  # fmt: skip


def _reason(exc: BaseException) -> str:
    """The library's own words, first line only (they name the damage, never a value of a record)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _row_group(file: RecordFile, index: int) -> pa.Table:
    try:
        return pq.ParquetFile(file.path).read_row_group(index)
    except (OSError, pa.ArrowException) as exc:
        raise RecordFileError(f"{file.path.name}: row group {index + 1} cannot be read ({_reason(exc)})") from None


def read_validated(file: RecordFile, index: int) -> list[ChildRecord]:
    """Row group ``index`` as records built straight from the columns (the fast decoder's structs), no rule checked.

    Only for a file ``open_record_file`` found marked validated by these rules (its columns are then exactly
    ``RECORD_SCHEMA``)."""
    if not file.validated:
        raise RecordFileError(file.refusal or f"{file.path.name} is not marked validated")
    table = _row_group(file, index)
    if table.num_rows == 0:
        return []
    kind = record_decoder().struct
    if kind is None:  # no fast struct for the record: pydantic's models (never the case for ChildRecord today)
        return [ChildRecord.model_validate(row) for row in table.to_pylist()]
    array = table.combine_chunks().to_struct_array()
    return typing.cast(list[ChildRecord], _builder(kind)(array.chunk(0) if array.num_chunks == 1 else
                                                         array.combine_chunks()))  # fmt: skip


# --- columns to structs ------------------------------------------------------------------------------------------
# Each column is turned into Python values once (``to_pylist`` of a flat array, in C), lists are cut by their
# offsets, and each struct is made positionally from its columns: no per-row dictionaries (``Table.to_pylist`` of
# these nested rows costs several times the JSON decoder) and no checks (msgspec's constructor checks nothing).

_Column = typing.Callable[[pa.Array], list[Any]]


@functools.cache
def _builder(kind: type[msgspec.Struct]) -> _Column:
    columns = [(field.name, _column(field.type)) for field in msgspec.structs.fields(kind)]

    def build(array: pa.Array) -> list[Any]:
        parts = array.flatten()  # each field's values, with the array's offset applied
        index = {array.type.field(i).name: i for i in range(array.type.num_fields)}
        values = [make(parts[index[name]]) for name, make in columns]
        return list(map(kind, *values))

    return build


def _column(annotation: Any) -> _Column:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _column(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        make = _column(inner)
        return make if make is _plain or isinstance(make, _Codes) else _nullable(make)  # these keep nulls as None
    if origin is list:
        return _list(_column(typing.get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return _builder(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _Codes(annotation)
    return _plain


class _Codes:
    """A column of codes as the code list's members (null stays None)."""

    def __init__(self, codes: type[enum.Enum]) -> None:
        self.members: dict[Any, Any] = {m.value: m for m in codes} | {None: None}

    def __call__(self, array: pa.Array) -> list[Any]:
        return list(map(self.members.__getitem__, _plain(array)))


def _plain(array: pa.Array) -> list[Any]:
    """Strings, dates, numbers and flags as Python values: through numpy, many times faster than ``to_pylist``
    (which makes an Arrow scalar of each value); a null date comes back as None (NaT), a null string as None."""
    if array.null_count and not (pa.types.is_string(array.type) or pa.types.is_date(array.type)):
        return typing.cast(list[Any], array.to_pylist())  # a null number or flag would become NaN or False
    return typing.cast(list[Any], array.to_numpy(zero_copy_only=False).tolist())


def _nullable(make: _Column) -> _Column:
    def build(array: pa.Array) -> list[Any]:
        if array.null_count == 0:
            return make(array)
        values = make(array)
        nulls = array.is_null().to_numpy(zero_copy_only=False).tolist()
        return [None if null else v for v, null in zip(values, nulls, strict=True)]

    return build


def _list(make: _Column) -> _Column:
    def build(array: pa.Array) -> list[Any]:
        offsets = array.offsets.to_pylist()
        first = offsets[0]
        items = make(array.values.slice(first, offsets[-1] - first))  # the values of this slice's lists only
        return [items[a - first : b - first] for a, b in itertools.pairwise(offsets)]

    return build


def read_rows(file: RecordFile, index: int) -> list[dict[str, Any]]:
    """Row group ``index`` as plain dictionaries, for the caller to validate."""
    return typing.cast(list[dict[str, Any]], _row_group(file, index).to_pylist())
