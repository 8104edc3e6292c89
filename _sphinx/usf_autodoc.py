"""The book's own Sphinx extension, for api.md's reference.

* A module's page documents every constant that its ``__all__`` names and its source defines, whether a ``#:``
  comment documents it or not.  Autodoc by itself shows a module's data only with such a comment, so a
  ``:data:`` reference to any other public constant would resolve nowhere.  (A constant a package re-exports
  is documented on the page of the module that defines it.)
* A package's table of its modules shows each module's first sentence read in that module, as on the
  module's own page: ``:func:`fit``` in the summary of ``usfkit.train`` is ``usfkit.train.fit``, not a
  ``fit`` of the package.  A first sentence runs past the paper's abbreviations (``App. C``, ``Eq. 5``).
"""
import inspect
import sys

from docutils import nodes
from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter
from sphinx.ext import autosummary
from sphinx.ext.autosummary import Autosummary
from sphinx.util.inspect import getall


class PublicDataDocumenter(DataDocumenter):
    """Autodoc's documenter of module data, taking also the undocumented constants of ``__all__``."""

    @classmethod
    def can_document_member(cls, member, membername, isattr, parent) -> bool:
        if super().can_document_member(member, membername, isattr, parent):
            return True
        if not isinstance(parent, ModuleDocumenter) or inspect.ismodule(member) or parent.analyzer is None:
            return False
        return membername in (getall(parent.object) or ()) and membername in parent.analyzer.tagorder

    def get_doc(self) -> list[list[str]]:
        """The constant's ``#:`` comment, or nothing (never the docstring of its type, ``dict`` or ``tuple``)."""
        comment = self.get_module_comment(self.objpath[-1])
        return [comment] if comment else []


class ModuleSummaries(Autosummary):
    """Autosummary, each module's row read with that module as the current one."""

    def get_table(self, items):
        context = self.env.ref_context
        outer = context.get("py:module")
        spec, table = None, None
        try:
            for item in items:
                real_name = item[3]
                context["py:module"] = real_name if real_name in sys.modules else outer
                part = super().get_table([item])
                if table is None:
                    spec, table = part
                else:
                    next(iter(table.findall(nodes.tbody))).extend(next(iter(part[1].findall(nodes.tbody))).children)
        finally:
            if outer is None:
                context.pop("py:module", None)
            else:
                context["py:module"] = outer
        return [spec, table] if table is not None else super().get_table([])


def setup(app):
    # where a summary's first sentence may not end (autosummary knows "e.g.", "i.e." and "et al.")
    autosummary.WELL_KNOWN_ABBREVIATIONS = (*autosummary.WELL_KNOWN_ABBREVIATIONS, "App.", "Eq.", "Eqs.", "Fig.",
                                            "Figs.", "Prop.", "Sec.")
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.autosummary")
    app.add_autodocumenter(PublicDataDocumenter, override=True)
    app.add_directive("autosummary", ModuleSummaries, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
