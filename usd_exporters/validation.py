"""Run OpenUSD's registered validators (``pxr.UsdValidation``) on a stage file."""

from __future__ import annotations

import os

from pxr import Usd, UsdValidation


def validate_stage(path: str | os.PathLike) -> list[str]:
    """Error messages from every registered validator (warnings are not errors); empty when clean."""
    stage = Usd.Stage.Open(os.fspath(path))
    registry = UsdValidation.ValidationRegistry()
    validators = registry.GetOrLoadValidatorsByName([m.name for m in registry.GetAllValidatorMetadata()])
    context = UsdValidation.ValidationContext(validators)
    errors = []
    for error in context.Validate(stage):
        if error.GetType() == UsdValidation.ValidationErrorType.Error:
            errors.append(f"{error.GetValidator().GetMetadata().name if error.GetValidator() else '?'}: "
                          f"{error.GetErrorAsString()}")
    return errors
