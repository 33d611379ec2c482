"""Fast decoding of the case record: msgspec structs derived from the pydantic models, the census rules in one pass.

The pydantic models of ``features.record`` stay the one definition of the record (the documented schema, the XML
reader, ingestion). This module derives from them, field by field, msgspec structs with the same names, types,
defaults and constraints, and reuses the models' own ``rules()`` methods (and properties such as ``is_open``) on
the structs, so the census rules are one piece of code. ``FastDecoder.decode`` turns JSON bytes into a struct in one
typed pass and checks the rules of every object it holds; a decoded record behaves like the pydantic one for every
reader of the record (features, assessment, what-ifs): same attribute names, same enum members, same dates.

It is an accelerator, never a second judge: whatever it does not accept (a type it would coerce differently, a
rule broken, whitespace pydantic would strip, a field validator it does not know) is handed to pydantic, whose
answer (the model, or the ValidationError with every message) is the answer. Only a body that both accept takes the
fast path, and a test proves on mutated records that the fast path never accepts what pydantic refuses.
"""

from __future__ import annotations

import datetime as dt
import itertools
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import annotated_types
import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from features.record import ChildRecord

__all__ = ["FastDecoder", "fast_struct", "record_decoder"]

ModelT = TypeVar("ModelT", bound=BaseModel)
_Rules = Callable[[Any], Any]
# Field validators the fast path reproduces itself; any other makes a model take the pydantic path.
_KNOWN_FIELD_VALIDATORS: dict[str, set[str]] = {"ChildRecord": {"_sort_episodes"}}
_RULES_VALIDATOR = "_check"  # the model validator that runs ``rules()``: reproduced by calling ``rules()``


class _Plan:
    """What checking one struct class needs: its model's rules, its nested fields, its string fields."""

    __slots__ = ("nested", "rules", "sort_episodes", "strings")

    def __init__(self) -> None:
        self.rules: _Rules | None = None
        self.nested: list[str] = []
        self.strings: list[str] = []
        self.sort_episodes = False


class _Unsupported(Exception):  # noqa: N818 (internal signal: this model takes the pydantic path)
    pass


class _Builder:
    def __init__(self) -> None:
        self.structs: dict[type[BaseModel], type[msgspec.Struct]] = {}
        self.plans: dict[type[msgspec.Struct], _Plan] = {}

    def struct(self, model: type[BaseModel]) -> type[msgspec.Struct]:
        if model in self.structs:
            return self.structs[model]
        decorators = model.__pydantic_decorators__
        known = _KNOWN_FIELD_VALIDATORS.get(model.__name__, set())
        if set(decorators.field_validators) - known or set(decorators.model_validators) - {_RULES_VALIDATOR}:
            raise _Unsupported(model.__name__)
        if decorators.validators or decorators.root_validators or decorators.field_serializers:
            raise _Unsupported(model.__name__)
        config = model.model_config
        if config.get("extra") != "forbid":
            raise _Unsupported(model.__name__)
        plan = _Plan()
        fields: list[tuple[str, Any, Any]] = []
        for name, info in model.model_fields.items():
            if info.alias not in (None, name) or info.validation_alias is not None:
                raise _Unsupported(f"{model.__name__}.{name}")
            kind = self._type(info.annotation, info.metadata, plan, name)
            if info.is_required():
                fields.append((name, kind, msgspec.NODEFAULT))
            elif info.default_factory is not None:
                fields.append((name, kind, msgspec.field(default_factory=info.default_factory)))  # type: ignore[arg-type]
            else:
                fields.append((name, kind, info.default))
        required = [f[:2] for f in fields if f[2] is msgspec.NODEFAULT]
        optional = [f for f in fields if f[2] is not msgspec.NODEFAULT]
        namespace: dict[str, Any] = {}
        for attribute, value in vars(model).items():  # the model's own properties and methods (rules, is_open...)
            if attribute.startswith("__") or attribute in model.model_fields:
                continue
            if isinstance(value, (property, types.FunctionType)) and not attribute.startswith("_check"):
                namespace[attribute] = value
        struct = msgspec.defstruct(
            f"Fast{model.__name__}",
            [*required, *optional],
            namespace=namespace,
            forbid_unknown_fields=True,
            frozen=True,
            gc=False,
            module=__name__,
        )
        if _RULES_VALIDATOR in decorators.model_validators:
            plan.rules = cast(_Rules, vars(model)["rules"])
        plan.sort_episodes = "_sort_episodes" in decorators.field_validators
        # Strings whose edges pydantic would judge differently (stripping, or a pattern's ``$`` before a final
        # newline, which Python's re allows and pydantic's does not): such a value goes to pydantic.
        strip = bool(config.get("str_strip_whitespace"))
        plan.strings = [
            n
            for n, info in model.model_fields.items()
            if info.annotation in (str, str | None)
            and (strip or any(getattr(m, "pattern", None) is not None for m in info.metadata))
        ]
        self.structs[model] = struct
        self.plans[struct] = plan
        return struct

    def _type(self, annotation: Any, metadata: list[Any], plan: _Plan, name: str) -> Any:
        meta = _meta(metadata)
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            inner, *extra = typing.get_args(annotation)
            found = [m for e in extra for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
            return self._type(inner, [*metadata, *found], plan, name)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(annotation)
            translated = [self._type(a, [], plan, name) for a in args]
            if meta is not None:  # the field's constraints hold for its value, not for None (``str | None``)
                if any(a is not type(None) and a not in (str, int) for a in args):
                    raise _Unsupported(name)
                translated = [t if t is type(None) else typing.Annotated[t, meta] for t in translated]
            out: Any = translated[0]
            for t in translated[1:]:
                out = out | t
            return out
        if origin is list:
            (item,) = typing.get_args(annotation)
            kind: Any = list[self._type(item, [], plan, name)]  # type: ignore[misc]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            kind = self.struct(annotation)
            if name not in plan.nested:
                plan.nested.append(name)
            return kind
        elif annotation in (str, int, bool, dt.date, type(None)) or (
            isinstance(annotation, type) and issubclass(annotation, str)  # a StrEnum
        ):
            kind = annotation
        else:
            raise _Unsupported(f"{name}: {annotation!r}")
        if origin is list and _nests_model(annotation) and name not in plan.nested:
            plan.nested.append(name)
        return kind if meta is None else typing.Annotated[kind, meta]


def _nests_model(annotation: Any) -> bool:
    return any(isinstance(a, type) and issubclass(a, BaseModel) for a in typing.get_args(annotation))


def _meta(metadata: list[Any]) -> msgspec.Meta | None:
    constraints: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            constraints["ge"] = m.ge
        elif isinstance(m, annotated_types.Le):
            constraints["le"] = m.le
        elif isinstance(m, annotated_types.MinLen):
            constraints["min_length"] = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            constraints["max_length"] = m.max_length
        elif getattr(m, "pattern", None) is not None:
            constraints["pattern"] = m.pattern
        else:
            raise _Unsupported(repr(m))
    return msgspec.Meta(**constraints) if constraints else None


class FastDecoder(Generic[ModelT]):
    """JSON bytes to ``model`` (the fast struct where it and pydantic agree, else pydantic's own answer)."""

    def __init__(self, model: type[ModelT]) -> None:
        self.model = model
        builder = _Builder()
        try:
            self.struct: type[msgspec.Struct] | None = builder.struct(model)
        except _Unsupported:
            self.struct = None  # every body takes the pydantic path
        self._plans = builder.plans
        self._decoder = msgspec.json.Decoder(self.struct) if self.struct is not None else None

    @property
    def fast(self) -> bool:
        """Whether this model has a fast path at all."""
        return self._decoder is not None

    def decode_fast(self, body: bytes | str) -> Any | None:
        """The struct when the fast path accepts ``body`` (types, constraints and every census rule), else None."""
        if self._decoder is None:
            return None
        try:
            value = self._decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return self._accepted(value)

    def decode(self, body: bytes | str) -> ModelT:
        """``body`` as the model (raises pydantic's ValidationError, with its messages, whenever pydantic would).

        The result is typed as the pydantic model: the fast struct has the same fields and methods (see the module's
        docstring); code that needs pydantic's own methods (``model_copy``, ``model_dump``) must not be given it."""
        fast = self.decode_fast(body)
        if fast is not None:
            return cast(ModelT, fast)
        return self.model.model_validate_json(body)

    def _accepted(self, value: msgspec.Struct) -> msgspec.Struct | None:
        """The value with pydantic's field validators applied, or None when a rule breaks or pydantic would strip."""
        plan = self._plans[type(value)]
        for name in plan.strings:
            text = getattr(value, name)
            if text is not None and text != text.strip():
                return None
        for name in plan.nested:
            held = getattr(value, name)
            if held is None:
                continue
            if isinstance(held, list):
                for item in held:
                    if self._accepted(item) is None:
                        return None
            elif self._accepted(held) is None:
                return None
        if plan.sort_episodes:
            episodes = value.episodes  # type: ignore[attr-defined]
            if any(a.referral_date > b.referral_date for a, b in itertools.pairwise(episodes)):
                value = msgspec.structs.replace(value, episodes=sorted(episodes, key=lambda e: e.referral_date))
        if plan.rules is not None and plan.rules(value).errors:
            return None
        return value


def fast_struct(model: type[BaseModel]) -> type[msgspec.Struct] | None:
    """The fast struct derived from ``model`` (None when it has none)."""
    return FastDecoder(model).struct


_RECORDS: FastDecoder[ChildRecord] | None = None


def record_decoder() -> FastDecoder[ChildRecord]:
    """The decoder of one case record (a line of ``closure-risk ingest --out``), built once."""
    global _RECORDS
    if _RECORDS is None:
        _RECORDS = FastDecoder(ChildRecord)
    return _RECORDS
