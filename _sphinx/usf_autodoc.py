"""The book's own Sphinx extension, for api.md's reference: a module's page documents every constant that its
``__all__`` names and its source defines, whether a ``#:`` comment documents it or not.  Autodoc by itself shows
a module's data only with such a comment, so a ``:data:`` reference to any other public constant would resolve
nowhere.  (A constant a package re-exports is documented on the page of the module that defines it.)"""
import inspect

from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter
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


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(PublicDataDocumenter, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
