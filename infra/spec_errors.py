"""How a stack's config problems are reported: `backbone:<key>: <problem>`, with <key> in the
path syntax of `pulumi config set --path` and <problem> in plain words instead of pydantic's."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROJECT = "backbone"


class SpecError(ValueError):
    """One or more config problems; `problems` holds (key, problem) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{PROJECT}:{key}: {problem}" for key, problem in problems))

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.problems]


def config_key(loc: tuple[Any, ...]) -> str:
    """A pydantic error location in `pulumi config set --path` syntax."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif "." in str(part) or not str(part).isidentifier():
            key += f'["{part}"]'
        else:
            key += ("." if key else "") + str(part)
    return key or "(config)"


_PROBLEMS = {
    "greater_than_equal": lambda c: f"must be >= {c['ge']}",
    "greater_than": lambda c: f"must be > {c['gt']}",
    "less_than_equal": lambda c: f"must be <= {c['le']}",
    "less_than": lambda c: f"must be < {c['lt']}",
    "literal_error": lambda c: f"must be one of {c['expected']}",
    "extra_forbidden": lambda c: "unknown key",
    "missing": lambda c: "required",
    "int_type": lambda c: "must be an integer",
    "int_parsing": lambda c: "must be an integer",
    "int_from_float": lambda c: "must be a whole number",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "string_type": lambda c: "must be a string",
    "model_type": lambda c: "must be an object",
    "model_attributes_type": lambda c: "must be an object",
    "dict_type": lambda c: "must be an object",
    "list_type": lambda c: "must be a list",
    "string_too_short": lambda c: "must not be empty" if c.get("min_length") == 1 else
                                  f"must be at least {c['min_length']} characters",
}


def problem(error: Mapping[str, Any]) -> str:
    render = _PROBLEMS.get(error["type"])
    if render is not None:
        return render(error.get("ctx") or {})
    return str(error["msg"]).removeprefix("Value error, ")
