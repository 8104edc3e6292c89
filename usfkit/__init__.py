"""usfkit: the code every chapter of the usf-book runs on.

The paper's concepts, one module each: uniformly scaling flows (``usfkit.models.flows``), Deep
SVDD (``usfkit.models.oneclass``), Proposition 1 (``usfkit.proposition1``), OneFlow, DOHSC,
VAE-USFlow (``usfkit.models.vae``) and the image heads (``usfkit.image``); the chapters'
experiments apart from them (``usfkit.experiments``); and what they run on: synthetic and
real data (``usfkit.data``), Lightning training (``usfkit.train``), metrics, plots, chapter
profiles, results with provenance and the papermill batch runner (``usfkit.reproduce``).
"""
__version__ = "0.1.0"

__all__ = ["__version__"]  # the modules are imported by name: ``from usfkit import plots``
