"""The two stack outputs a contract travels in: ``backbone`` (redaction-safe) and
``backbone_secrets`` (credentials only, placed by `SECRET_FIELDS`). `split_secrets` makes
them from one document; `merge_outputs` joins them back (or passes a bare document through)."""
from __future__ import annotations

from typing import Any

from .model import SECRET_FIELDS, Contract


def split_secrets(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a contract document into (redaction-safe, secrets-only) halves."""
    public = {k: (dict(v) if isinstance(v, dict) else v) for k, v in document.items()}
    secret: dict[str, Any] = {}
    for section, fields in SECRET_FIELDS.items():
        block = public.get(section)
        if not isinstance(block, dict):
            continue
        for name in fields:
            if ".*." in name:  # each entry of a map of credentials keeps its own secret
                mapping, _, field = name.partition(".*.")
                entries = block.get(mapping)
                if not isinstance(entries, dict):
                    continue
                block[mapping] = entries = {k: (dict(v) if isinstance(v, dict) else v) for k, v in entries.items()}
                for key, entry in entries.items():
                    if isinstance(entry, dict) and entry.get(field) is not None:
                        secret.setdefault(section, {}).setdefault(mapping, {})[key] = {field: entry.pop(field)}
            elif block.get(name) is not None:
                secret.setdefault(section, {})[name] = block.pop(name)
    return public, secret


def merge_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Join `pulumi stack output --json` (or a bare contract) into one document."""
    if "backbone" not in outputs and "backbone_secrets" not in outputs \
            and set(outputs) & set(Contract.model_fields):
        return outputs  # a bare contract document (validation then asks for contract_version)
    if "backbone" not in outputs:
        raise ContractError("outputs", "no 'backbone' output found (is this a backbone stack?)")
    public, secret = outputs["backbone"], outputs.get("backbone_secrets") or {}
    if not isinstance(public, dict):
        raise ContractError("backbone", f"expected an object, got {type(public).__name__}")
    if not isinstance(secret, dict):
        raise ContractError("backbone_secrets", f"expected an object, got {type(secret).__name__}")
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in public.items()}
    for section, values in secret.items():
        if section not in SECRET_FIELDS:
            raise ContractError(f"backbone_secrets.{section}", "unknown secrets section")
        if values is None:
            raise ContractError(f"backbone_secrets.{section}", "is null: leave it out, or give its secrets")
        if not isinstance(values, dict):
            raise ContractError(f"backbone_secrets.{section}", f"expected an object, got {type(values).__name__}")
        maps = {f.partition(".*.")[0]: f.partition(".*.")[2] for f in SECRET_FIELDS[section] if ".*." in f}
        for name, value in values.items():
            where = f"backbone_secrets.{section}.{name}"
            if name in maps:
                _merge_map(merged, section, name, maps[name], value, where)
                continue
            if name not in SECRET_FIELDS[section]:
                raise ContractError(where, "not a secret field")
            if isinstance(merged.get(section), dict):
                merged[section][name] = value
    return merged


def _merge_map(merged: dict[str, Any], section: str, mapping: str, field: str, values: Any, where: str) -> None:
    """Put each entry's secret back into the public map of credentials (roles, principals)."""
    if not isinstance(values, dict):
        raise ContractError(where, f"expected an object, got {type(values).__name__}")
    block = merged.get(section)
    if not isinstance(block, dict):
        return
    entries = block.get(mapping)
    entries = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (entries or {}).items()} \
        if isinstance(entries, dict) else {}
    for key, secret in values.items():
        if not isinstance(secret, dict) or set(secret) - {field}:
            raise ContractError(f"{where}.{key}", f"expected an object holding only '{field}'")
        if not isinstance(entries.get(key), dict):
            raise ContractError(f"{where}.{key}", "a secret for an entry the public output does not declare")
        entries[key][field] = secret.get(field)
    block[mapping] = entries


class ContractError(ValueError):
    """Invalid configuration; `field` names the offending key."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
