"""The label translator: which saved label names a USF, a NonUSF or neither.

The chapters saved their models under older spec vocabularies: the model's name sits under ``coupling``,
``flow``, ``kind`` or ``method`` (:data:`LABEL_KEYS`), spelled as the paper's names (``"USFlow"``,
``"VAE-NonUSFlow"``), as coupling values (``"additive_lu"``, ``"affine"``) or as ``"usf"``/``"NonUSF"``.
This module translates them, in one place, for the claims that compare a USF with its NonUSF.  It goes
once every record is keyed by the one run-key vocabulary (issue 25); nothing else in the report should
learn these spellings.
"""
from __future__ import annotations

from typing import Any

from ...models import flows

__all__ = ["LABEL_KEYS", "USF_BASED", "flow_kind", "is_usf_row", "is_vae", "pick", "row_kind"]


def flow_kind(label: Any) -> str | None:
    """``"usf"``, ``"nonusf"`` or ``None`` (not a (Non)USF) for any label a chapter saves: the paper's
    names (``"USFlow"``, ``"VAE-NonUSFlow"``), the ``coupling`` values of :data:`usfkit.models.flows.COUPLINGS`
    (``"additive_lu"``, ``"affine"``, ...) and the older ``"usf"``/``"NonUSF"`` spellings."""
    name = str(label).removeprefix("VAE-")
    name = flows.PAPER_FLOWS.get(name, name)
    if name in flows.COUPLINGS:
        return "usf" if name.startswith("additive") else "nonusf"
    return {"usf": "usf", "nonusf": "nonusf"}.get(name.lower())


#: The keys under which the chapters store a model's name in a saved row or a run's spec.
LABEL_KEYS = ("coupling", "flow", "kind", "method")


def row_kind(row: dict) -> str | None:
    """:func:`flow_kind` of a saved row (a summary's row or a run's spec): its ``constant_det`` when it
    has one (whether a flow is a USF is that property, not its name), else its first label of LABEL_KEYS."""
    if "constant_det" in row:
        return "usf" if row["constant_det"] else "nonusf"
    return next((flow_kind(row[k]) for k in LABEL_KEYS if k in row), None)


def is_vae(label: Any) -> bool:
    return str(label).startswith("VAE-")


def pick(labels, kind: str, vae: bool = False) -> str:
    """The one label among ``labels`` of ``kind`` (and VAE or not); KeyError when there is none."""
    found = [lab for lab in labels if flow_kind(lab) == kind and is_vae(lab) == vae]
    if len(found) != 1:
        raise KeyError(f"expected one {'VAE-' if vae else ''}{kind} label among {list(labels)}, found {found}")
    return found[0]


#: Methods whose model is a USFlow trained with another objective (usfkit.models.oneflow builds OneFlow's flow with
#: coupling "additive_lu"): their runs count as USF runs where failures are counted.
USF_BASED = ("OneFlow",)


def is_usf_row(row: dict) -> bool:
    """Whether a saved row or a run's spec is a uniformly scaling flow's run (OneFlow's included: USF_BASED)."""
    return row_kind(row) == "usf" or row.get("method") in USF_BASED
