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
            if block.get(name) is not None:
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
        for name, value in values.items():
            if name not in SECRET_FIELDS[section]:
                raise ContractError(f"backbone_secrets.{section}.{name}", "not a secret field")
            if isinstance(merged.get(section), dict):
                merged[section][name] = value
    return merged


class ContractError(ValueError):
    """Invalid configuration; `field` names the offending key."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
