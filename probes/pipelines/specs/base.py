"""The base every spec shares: strict, frozen, documented fields; names taken from the registries; one line for a
bad value that names the key (``my.toml: ablations[0]: key 'top_k'``) or the flag (``--top-k``) and the fix."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from analysis.errors import ProbesError
from probes.registry import ABLATIONS, BEHAVIOURS, Registry, RegistryError

MAX_EXAMPLES = 1_000_000
WHY_MAX_EXAMPLES = "every example is generated, tokenised and scored in memory before the first batch runs"


class SpecError(ProbesError, ValueError):
    """A spec (TOML file, CLI flags or Python arguments) that does not validate."""


def meta(help: str, **extra: Any) -> dict[str, Any]:
    return {"description": help, "json_schema_extra": extra} if extra else {"description": help}


def registered(registry: Registry, lead: str, **traits: Any) -> dict[str, Any]:
    """A field that takes a name of ``registry`` (with ``traits``): its help lists them, the CLI reads them live."""
    return meta(lead + registry.help(**traits), registry=registry.what, traits=traits, lead=lead)


def _name_in(registry: Registry, **traits: Any) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is not None:
            try:
                registry.entry(value.partition(":")[0] if registry is BEHAVIOURS else value, **traits)
            except RegistryError as err:
                raise ValueError(str(err)) from None
        return value

    return AfterValidator(check)


Kind = Annotated[str, _name_in(ABLATIONS, needs_source=False)]  # an ablation kind that needs no paired run
Counterfactual = Annotated[str, _name_in(ABLATIONS)]  # any ablation kind, patching included
BehaviourName = Annotated[str | None, _name_in(BEHAVIOURS)]
BEHAVIOUR_HELP = "default: agreement for causal LMs, probe:subject_number for encoders; "


class Spec(BaseModel):
    """Base of every spec: unknown keys are errors, types are strict (a string is not a number), frozen once made."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records: every setting, defaults included."""
        return self.model_dump(mode="json")


S = TypeVar("S", bound=Spec)


def hint(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_KIND_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
    type(None): "empty",
}


def _kinds(annotation: Any) -> list[str]:
    """Plain-language names of what a field takes, from its annotation."""
    origin = get_origin(annotation)
    if origin is Literal:
        return ["a string"]
    if origin is None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return ["a table"]
        return [_KIND_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))]
    if origin is list:
        return ["a list"]
    names: list[str] = []
    for arg in get_args(annotation):
        for name in _kinds(arg):
            if name not in names and name != "empty":
                names.append(name)
    return names


def _field_of(model: type[BaseModel], loc: tuple) -> tuple[type[BaseModel], str | None, list[str]]:
    """The model and field an error location points at, and the readable path to it (ablations[0])."""
    path: list[str] = []
    current: type[BaseModel] = model
    name: str | None = None
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, str) and part in current.model_fields:
            name = part
            annotation = current.model_fields[part].annotation
            nested = [
                a
                for a in (
                    [annotation] + list(get_args(annotation)) + [b for a in get_args(annotation) for b in get_args(a)]
                )
                if isinstance(a, type) and issubclass(a, BaseModel)
            ]
            if i + 2 < len(loc) and isinstance(loc[i + 1], int) and nested and get_origin(annotation) is list:
                members = {a.__name__ for a in nested}
                if len(get_args(get_args(annotation)[0])) > 1 and loc[i + 2] not in members:
                    break  # an error of the union's other member (a string where a table was possible)
                path.append(f"{part}[{loc[i + 1]}]")
                current, name = nested[0], None
                i += 2
                if i < len(loc) and loc[i] in members:
                    i += 1  # pydantic's name of the union member
                continue
        i += 1
    return current, name, path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe_error(err: ValidationError, model: type[BaseModel], where: str, style: str = "file") -> str:
    """One line for a pydantic error: where, which key (or flag), what is wrong and what would be right."""
    first = max(err.errors(), key=lambda e: len(e["loc"]))  # the most specific (a union's member over the union)
    owner, name, path = _field_of(model, tuple(first["loc"]))
    prefix = ": ".join([where, *path]) if where else ": ".join(path)
    prefix = prefix + ": " if prefix else ""
    kind, value = first["type"], first.get("input")
    if kind == "extra_forbidden":
        unknown = str(first["loc"][-1])
        keys = [k for k in owner.model_fields]
        if style == "cli":
            return f"{prefix}unknown option {_flag(unknown)}"
        return f"{prefix}unknown key {unknown!r}{hint(unknown, keys)}; keys are {', '.join(keys)}"
    if name is None:
        return f"{prefix}{str(first['msg']).removeprefix('Value error, ')}"
    field = owner.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    key = _flag(name) if style == "cli" else f"key {name!r}"
    if style == "cli" and extra.get("positional"):
        key = name.upper()
    if kind == "missing":
        return f"{prefix}{extra.get('missing') or f'{key} is required'}"
    if kind == "value_error":
        return f"{prefix}{key}: {str(first['msg']).removeprefix('Value error, ')}"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        bound = first["ctx"].get("ge", first["ctx"].get("gt", first["ctx"].get("lt", first["ctx"].get("le"))))
        word = {
            "greater_than_equal": "at least",
            "greater_than": "above",
            "less_than": "below",
            "less_than_equal": "at most",
        }[kind]
        why = f" ({extra['why']})" if extra.get("why") else ""
        if name == "test_fraction":
            return f"{prefix}{key}: must be between 0 and 1, got {value}"
        return f"{prefix}{key} must be {word} {bound}{why}, got {value}"
    if kind == "literal_error" and len(first["loc"]) and isinstance(first["loc"][-1], int):
        item = name[:-1] if name.endswith("s") else name
        choices = [str(c) for c in get_args(get_args(field.annotation)[0])]
        return f"{prefix}{key}: unknown {item} {value!r}{hint(value, choices)}; choose from {', '.join(choices)}"
    if kind == "literal_error" and get_origin(field.annotation) is Literal:
        choices = [str(c) for c in get_args(field.annotation)]
        return f"{prefix}{key}: use {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}"
    errors_here = [e for e in err.errors() if _field_of(model, tuple(e["loc"]))[1] == name]
    kinds = _kinds(field.annotation)
    wrong_type = all(
        e["type"].endswith("_type") or (e["type"] == "literal_error" and not isinstance(value, str))
        for e in errors_here
    )
    if extra.get("hint") and not wrong_type:
        return f"{prefix}{key}: {extra['hint']}, got {value!r}"
    return f"{prefix}{key} should be {' or '.join(kinds)}, got {value!r}"


def make(model: type[S], raw: dict[str, Any], where: str = "", style: str = "file") -> S:
    """A spec from raw values (TOML, CLI, keyword arguments); a bad one raises one line (``SpecError``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise SpecError(describe_error(err, model, where, style)) from None
