"""Read a YAML file (safe loading only) into a pydantic model, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gbdist.errors import GbdistError

M = TypeVar("M", bound=BaseModel)


def read_mapping(path: Path, what: str) -> dict:
    """The YAML mapping in ``path``; ``what`` names the kind of file in errors ("job file")."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise GbdistError(f"{path}: cannot read the {what} ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise GbdistError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise GbdistError(f"{path}: a {what} is a YAML mapping of keys to values")
    return raw


def validate(model: type[M], raw: dict, path: Path, what: str) -> M:
    """``model`` from ``raw``; a GbdistError names the file and every unknown or mistyped key."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise GbdistError(f"{path}: invalid {what}: {problems}") from None
