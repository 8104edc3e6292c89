"""The committed full-profile record a chapter's first section ("At the paper's settings") reads, with a
line that says where it comes from.  Unlike :meth:`usfkit.book.Chapter.full_results` it reads the committed
record on every profile, also on the full profile itself (whose own results are written only at its end)."""
from __future__ import annotations

from .. import results

__all__ = ["committed"]


def committed(chapter: str, name: str) -> tuple[dict | None, str]:
    """``(data, source)``: the ``data`` of the committed full-profile record ``name`` of ``chapter`` (``None``
    when there is none) and a Markdown line naming its provenance, or saying that it is missing and how it
    is made."""
    record = results.load(chapter, name, "full")
    if record is None:
        return None, (f"*The full-profile record `{name}` of this chapter is not committed yet: "
                      f"`usf-reproduce {chapter} --profile full` writes it.*")
    p = record["provenance"]
    return record["data"], (f"*From the committed full-profile run ({p['device']}, {p['wall_time_s']:.0f} s, "
                            f"commit {p['git_commit'][:7]}, finished {p['finished_at'][:10]}).*")
