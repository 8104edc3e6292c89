"""usfkit: the code every chapter of the usf-book runs on.

Uniformly scaling flows (``usfkit.flows``), Deep SVDD (``usfkit.oneclass``),
synthetic and real data (``usfkit.data``), Lightning training (``usfkit.train``),
metrics, plots, chapter profiles, results with provenance and the papermill
batch runner (``usfkit.reproduce``).
"""
__version__ = "0.1.0"
REPOSITORY = "https://github.com/usf-book/usf-book"
