"""The one cattrs converter that turns every service's JSON into models.

One hook factory serves every attrs model: it maps each attribute to its JSON key (the
camelCase of the name, or the name itself for a model whose ``__json_names__`` is
``"snake_case"``, or the key given in the field's metadata), ignores unknown keys, keeps
the source object as ``.raw`` and checks every value's JSON type strictly. Nothing is coerced:
text where a number belongs, or a list where an object belongs, is an error, never a guess.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar, Union

import attrs
import cattrs

from ._errors import ResponseDecodeError

T = TypeVar("T")
ValueHook = Callable[[Any], Any]

converter = cattrs.Converter()

# Beyond 2**53 a float no longer holds every whole number: such a value is not taken as one.
_EXACT_FLOAT_INTEGER = 2**53


class _Mismatch(Exception):
    """A value of the wrong JSON type; the keys leading to it are added on the way up."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.steps: list[str | int] = []

    def under(self, key: str | int) -> _Mismatch:
        self.steps.append(key)
        return self

    @property
    def path(self) -> str:
        parts: list[str] = []
        for step in reversed(self.steps):
            parts.append(f"[{step}]" if isinstance(step, int) else ("." if parts else "") + step)
        return "".join(parts)


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# How a model's attribute names become JSON keys: TemPolor's records are camelCase, Noiz's
# are snake_case like the attributes themselves.
_JSON_NAMES: dict[str, Callable[[str], str]] = {
    "camelCase": camel_case,
    "snake_case": lambda name: name,
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text"}
    names.update({list: "a list", dict: "an object"})
    return names.get(type(value), type(value).__name__)


# ------------------------------------------------------------- value hooks


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    raise _Mismatch("text", value)


def _boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Mismatch("a boolean", value)


def _integer(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is float and value.is_integer() and abs(value) <= _EXACT_FLOAT_INTEGER:
        return int(value)
    raise _Mismatch("a whole number", value)


def _number(value: Any) -> float:
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[no-any-return]
    raise _Mismatch("a number", value)


def _object(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise _Mismatch("an object", value)


_from_timestamp = datetime.fromtimestamp
_UTC = timezone.utc
# Epoch numbers are told apart by magnitude: 10**11 seconds is the year 5138, 10**11
# milliseconds is March 1973. TemPolor sends milliseconds, Noiz seconds.
EPOCH_MILLISECONDS_FROM = 10**11


def epoch_seconds(value: float) -> float:
    """An epoch number in seconds, whether it was given in seconds or in milliseconds."""
    return value / 1000 if abs(value) >= EPOCH_MILLISECONDS_FROM else value


def _timestamp(value: Any) -> datetime:
    """Epoch seconds or milliseconds (told by magnitude) or an ISO 8601 string, as an aware
    UTC datetime."""
    kind = type(value)
    try:
        if kind is int or kind is float:
            return _from_timestamp(epoch_seconds(value), _UTC)
        if kind is str:
            text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                return moment.replace(tzinfo=_UTC)
            return moment.astimezone(_UTC)
    except (ValueError, OverflowError, OSError):
        raise _Mismatch("a timestamp", value) from None
    raise _Mismatch("a timestamp (epoch seconds, milliseconds or ISO 8601)", value)


def _open_enum_members(annotation: Any) -> dict[int, enum.IntEnum] | None:
    """For ``SomeIntEnum | int`` (an open enum, as ``JobStatus``): its members by value."""
    if typing.get_origin(annotation) not in (Union, types.UnionType):
        return None
    members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if len(members) != 2 or int not in members:
        return None
    kind = members[1] if members[0] is int else members[0]
    if not (isinstance(kind, type) and issubclass(kind, enum.IntEnum)):
        return None
    return {member.value: member for member in kind}


def _open_enum(known: dict[int, enum.IntEnum]) -> ValueHook:
    """A number as its member where the enum knows it, else the plain int (``JobStatus``)."""

    def structure_open_enum(value: Any) -> enum.IntEnum | int:
        number = _integer(value)
        return known.get(number, number)

    return structure_open_enum


def _list_of(item: ValueHook) -> ValueHook:
    def structure_list(value: Any) -> list[Any]:
        if type(value) is not list:
            raise _Mismatch("a list", value)
        result = []
        for index, element in enumerate(value):
            try:
                result.append(item(element))
            except _Mismatch as exc:
                raise exc.under(index) from None
        return result

    return structure_list


def _model_list_of(cls: type[Any]) -> ValueHook:
    """A list of models (a page of records): each element in a key layout seen before goes
    to its code at once. Where one fails, the list is walked again to name its index."""
    build = _model_hook(cls)
    get_shape = _SHAPES_GET[cls]

    def structure_model_list(value: Any) -> list[Any]:
        if type(value) is not list:
            raise _Mismatch("a list", value)
        try:
            return [
                ((type(element) is dict and get_shape(tuple(element))) or build)(element)
                for element in value
            ]
        except _Mismatch:
            for index, element in enumerate(value):
                try:
                    build(element)
                except _Mismatch as exc:
                    raise exc.under(index) from None
            raise

    return structure_model_list


def _dict_of(item: ValueHook) -> ValueHook:
    def structure_dict(value: Any) -> dict[str, Any]:
        mapping = _object(value)
        result = {}
        for key, element in mapping.items():
            try:
                result[key] = item(element)
            except _Mismatch as exc:
                raise exc.under(key) from None
        return result

    return structure_dict


_SIMPLE: dict[Any, ValueHook] = {
    str: _text,
    bool: _boolean,
    int: _integer,
    float: _number,
    datetime: _timestamp,
    Any: lambda value: value,
}


def _value_hook(annotation: Any) -> ValueHook:
    """How to check and build one attribute's value from its JSON."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        known = _open_enum_members(annotation)
        if known is not None:
            return _open_enum(known)
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _value_hook(members[0])
        raise TypeError(f"unsupported union {annotation!r}")
    if origin is list:
        item = typing.get_args(annotation)[0]
        if attrs.has(item):
            return _model_list_of(item)
        return _list_of(_value_hook(item))
    if origin is dict:
        if _is_any_object(annotation):
            return _object  # any JSON object as it is: nothing to check inside
        return _dict_of(_value_hook(typing.get_args(annotation)[1]))
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    if attrs.has(annotation):
        return _model_hook(annotation)
    raise TypeError(f"no structure hook for {annotation!r}")


def _model_hook(cls: type[Any]) -> ValueHook:
    converter.get_structure_hook(cls)  # generates the class's builder on first use
    return _BUILDERS[cls]


# Checks written inline into generated code: the common primitive fields cost no call.
_INLINE_CHECKS = {
    str: ("type({v}) is not str", "text"),
    bool: ("type({v}) is not bool", "a boolean"),
    float: ("type({v}) is not int and type({v}) is not float", "a number"),
    dict: ("type({v}) is not dict", "an object"),  # dict[str, Any]: any JSON object
}
# Errors a timestamp of the wrong size raises in datetime.fromtimestamp.
_TIMESTAMP_ERRORS = (ValueError, OverflowError, OSError)
# How many key layouts of one model get code of their own; others take the generic path.
_MAX_SHAPES = 32


def _is_any_object(annotation: Any) -> bool:
    """``dict[str, Any]``: any JSON object, taken as it is."""
    return typing.get_origin(annotation) is dict and typing.get_args(annotation)[1] is Any


def _optional_member(annotation: Any) -> Any:
    """``X`` for ``X | None``; anything else unchanged."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


class _Plan:
    """What the generated code of one model needs: per attribute, its JSON key (None for an
    attribute not read from JSON, "" for ``.raw``) and how to check its value."""

    def __init__(self, cls: type[Any]) -> None:
        attrs.resolve_types(cls)
        self.cls = cls
        self.namespace: dict[str, Any] = {
            "_Mismatch": _Mismatch,
            "cls": cls,
            "_integer": _integer,
            "_new": object.__new__,
            "_setattr": object.__setattr__,
        }
        self.fields: list[tuple[str, str | None, int]] = []  # name, key, index
        self.index: dict[str, int] = {}
        self.types: dict[str, Any] = {}
        template: dict[str, Any] = {}
        json_name = _JSON_NAMES[getattr(cls, "__json_names__", "camelCase")]
        for index, attribute in enumerate(attrs.fields(cls)):
            self.index[attribute.name] = index
            template[attribute.name] = None
            if attribute.metadata.get("raw"):
                self.fields.append((attribute.name, "", index))
                continue
            key = attribute.metadata.get("json", json_name(attribute.name))
            kind = self.types[attribute.name] = _optional_member(attribute.type)
            if key is None:  # not from JSON: its default, shared, so never a factory
                if isinstance(attribute.default, attrs.Factory):  # type: ignore[arg-type]
                    raise TypeError(f"{cls.__name__}.{attribute.name}: no factory defaults")
                self.namespace[f"default{index}"] = template[attribute.name] = attribute.default
            elif kind not in _INLINE_CHECKS and kind is not int:
                self.namespace[f"hook{index}"] = _value_hook(attribute.type)
            self.fields.append((attribute.name, key, index))
        self.namespace["_template"] = template

    def check(self, var: str, name: str, key: str, index: int) -> list[str]:
        """Lines that check (and where needed convert) the value in ``var``: None passes.

        The type test comes first, so a value of the right type, the common case, is
        decided by one comparison; the usual form of the values that need converting
        (an epoch number, a known enum number, a nested object) is converted inline,
        and anything else goes to the attribute's hook, which converts or raises."""
        kind = self.types[name]
        if _is_any_object(kind):
            kind = dict
        if kind in _INLINE_CHECKS:
            check, expected = _INLINE_CHECKS[kind]
            return [
                f"    if {check.format(v=var)} and {var} is not None:",
                f"        raise _Mismatch({expected!r}, {var}).under({key!r})",
            ]
        hook = "_integer" if kind is int else f"hook{index}"
        fallback = [
            "        try:",
            f"            {var} = {hook}({var})",
            "        except _Mismatch as exc:",
            f"            raise exc.under({key!r}) from None",
        ]
        if kind is int:
            return [f"    if type({var}) is not int and {var} is not None:", *fallback]
        if kind is datetime:
            self.namespace.update(_from_timestamp=_from_timestamp, _UTC=_UTC)
            self.namespace["_TIMESTAMP_ERRORS"] = _TIMESTAMP_ERRORS
            self.namespace["_MILLISECONDS"] = EPOCH_MILLISECONDS_FROM
            return [
                f"    if type({var}) is int:",
                "        try:",
                f"            {var} = _from_timestamp({var} / 1000 if {var} >= _MILLISECONDS"
                f" or {var} <= -_MILLISECONDS else {var}, _UTC)",
                "        except _TIMESTAMP_ERRORS:",
                f"            raise _Mismatch('a timestamp', {var}).under({key!r}) from None",
                f"    elif {var} is not None:",
                *fallback,
            ]
        members = _open_enum_members(kind)
        if members is not None:
            self.namespace[f"members{index}"] = members
            return [
                f"    if type({var}) is int:",
                f"        {var} = members{index}.get({var}, {var})",
                f"    elif {var} is not None:",
                *fallback,
            ]
        if attrs.has(kind):
            # A nested model in a key layout seen before: its code at once, no dispatch.
            self.namespace[f"shapes{index}"] = _SHAPES_GET[kind]
            fallback[1] = (
                f"            {var} = ((type({var}) is dict and shapes{index}(tuple({var})))"
                f" or hook{index})({var})"
            )
        return [f"    if {var} is not None:", *fallback]

    def instance(self, values: dict[str, str]) -> list[str]:
        """Lines that return the instance, each attribute from the expression given."""
        if "__slots__" in self.cls.__dict__:
            arguments = ", ".join(f"{name}={values[name]}" for name, _, _ in self.fields)
            return [f"    return cls({arguments})"]
        # Every attribute is set here, so the instance can skip __init__, whose one
        # object.__setattr__ per attribute (frozen classes) costs more than all the checks.
        # Its __dict__ is a copy of a template holding every default (one C call), then the
        # values read: cheaper than a dict display, which CPython builds in chunks of 16
        # and merges, and no work at all for an attribute whose key is absent.
        lines = ["    attributes = _template.copy()"]
        for name, _, _ in self.fields:
            if values[name] not in ("None", f"default{self.index[name]}"):
                lines.append(f"    attributes[{name!r}] = {values[name]}")
        return [
            *lines,
            "    instance = _new(cls)",
            "    _setattr(instance, '__dict__', attributes)",
            "    return instance",
        ]

    def compile(self, name: str, lines: list[str]) -> Callable[[Any], Any]:
        namespace = dict(self.namespace)
        exec(compile("\n".join(lines), f"<structure {self.cls.__name__}>", "exec"), namespace)
        function: Callable[[Any], Any] = namespace[name]
        return function

    def generic(self) -> Callable[[Any], Any]:
        """Any dict: one lookup per attribute."""
        lines = ["def generic(data):", "    get = data.get"]
        values: dict[str, str] = {}
        for name, key, index in self.fields:
            if key == "":
                values[name] = "data"
            elif key is None:
                values[name] = f"default{index}"
            else:
                lines.append(f"    v{index} = get({key!r})")
                lines += self.check(f"v{index}", name, key, index)
                values[name] = f"v{index}"
        return self.compile("generic", lines + self.instance(values))

    def shaped(self, shape: tuple[str, ...]) -> Callable[[Any], Any]:
        """A dict with exactly these keys in this order: its values are unpacked in one
        step, and an attribute whose key is absent is None with no lookup at all."""
        by_key = {key: (name, index) for name, key, index in self.fields if key}
        values: dict[str, str] = {}
        targets = []
        checks: list[str] = []
        for key in shape:
            if key not in by_key:
                targets.append("_")  # a key the model does not know
                continue
            name, index = by_key[key]
            targets.append(f"v{index}")
            checks += self.check(f"v{index}", name, key, index)
            values[name] = f"v{index}"
        for name, field_key, index in self.fields:
            if field_key == "":
                values[name] = "data"
            elif field_key is None:
                values[name] = f"default{index}"
            else:
                values.setdefault(name, "None")
        lines = ["def shaped(data):"]
        if targets:
            lines.append(f"    {', '.join(targets)}, = data.values()")
        return self.compile("shaped", lines + checks + self.instance(values))


def _make_model_hook(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
    """The structure hook for one attrs model, generated once per class.

    The code is specialised per class (as cattrs' own generated hooks are), and further per
    layout of keys: a service sends its records with the same keys in the same order, so
    the code for that layout unpacks every value in one step and checks each inline (text,
    booleans and numbers cost no call). Other layouts, past a few dozen per model, take a
    generic path with one lookup per attribute. Both check every value strictly.
    """
    plan = _Plan(cls)
    generic = plan.generic()
    shapes: dict[tuple[str, ...], Callable[[Any], Any]] = {}
    get_shape = shapes.get
    most_keys = 2 * len(plan.fields) + 32  # more keys than that get no code of their own

    def build(data: Any) -> Any:
        if type(data) is not dict:
            raise _Mismatch("an object", data)
        shape = tuple(data)
        shaped = get_shape(shape)
        if shaped is None:
            if len(shapes) >= _MAX_SHAPES or len(shape) > most_keys:
                return generic(data)
            shaped = shapes[shape] = plan.shaped(shape)
        return shaped(data)

    _BUILDERS[cls] = build
    _SHAPES_GET[cls] = get_shape
    return lambda data, _: build(data)


_BUILDERS: dict[type[Any], ValueHook] = {}
# Per model, the code generated for each key layout seen so far, by layout.
_SHAPES_GET: dict[type[Any], Callable[[tuple[str, ...]], Callable[[Any], Any] | None]] = {}
converter.register_structure_hook_factory(attrs.has, _make_model_hook)


def decode(data: Any, cls: Any) -> Any:
    """Build ``cls`` (a model, or ``list[Model]``/``dict[str, Model]``) from parsed JSON.

    Raises ResponseDecodeError naming the key whose value has the wrong type.
    """
    hook = _HOOKS.get(cls)
    if hook is None:
        hook = _HOOKS[cls] = _value_hook(cls)
    try:
        return hook(data)
    except _Mismatch as exc:
        where = f" at {exc.path}" if exc.path else ""
        raise ResponseDecodeError(
            f"expected {exc.expected}{where}, got {_describe(exc.value)}"
        ) from None
    except RecursionError:
        raise ResponseDecodeError("JSON nested too deeply") from None


_HOOKS: dict[Any, ValueHook] = {}
