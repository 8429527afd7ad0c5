"""Target profiles: how the loader talks to one case-management API (iCasework first)."""

from __future__ import annotations

from loader.targets.icasework import OPERATIONS, ICasework, Lookup, Operation, UploadResult

__all__ = ["OPERATIONS", "ICasework", "Lookup", "Operation", "UploadResult"]
