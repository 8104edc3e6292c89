"""The reproduction report (chapter 08): every checkable claim of the paper, ours beside it, and a verdict
computed by code.

:data:`~.core.CLAIMS` is the registry, one entry per judged comparison: a claim over two pairs (USFlow vs NonUSFlow and
VAE-USFlow vs VAE-NonUSFlow) is two entries, never "the weaker of the two".  Each topic module registers its
claims with :func:`~.core.claim`, and they are read in the report's order (:data:`~.render.TOPICS`):

* :mod:`.theory` — Eq. 4, 5, 6, collapse, exploding determinants, App. B.2's prior, Prop. 1 (chapters 01-03);
* :mod:`.synthetic` — Figures 1, 2, 5-8 and App. D's mixture search (chapters 01, 02, 04);
* :mod:`.tabular` — §5.1.2 and Figure 3, under ADBench's protocol and without its leak (chapter 05);
* :mod:`.vae` — Figure 11 and App. D's VAE-NonUSFlow failures (chapter 06);
* :mod:`.failures` — App. D's "no USF run fails", over every chapter;
* :mod:`.image` — §5.2, Tables 1-5, Figures 4, 9, 10 (chapter 07).

Around them: :mod:`.core` (verdicts, :class:`~.core.Finding`, :class:`~.core.Source`, the registry),
:mod:`.rules` (the tolerance rules, pure functions of numbers), :mod:`.render` (the page's text and tables, the figure's colours) and
:mod:`.evaluation` (:func:`~.evaluation.report`: every claim evaluated into one table).

Verdicts (:data:`~.core.VERDICTS`): ``"reproduced"``, ``"partly"``, ``"not reproduced"`` — always with a direction
(:data:`~.core.DIRECTIONS`: contradicted, not supported, differs in USF's favour) — and ``"not run here"``, always with
the reason (no records, too few datasets or classes for the rule, random backbone weights, no VisA data, the VAE
score not yet recorded, ...).  Nothing is judged from missing data.  Every tabular claim is judged twice, side by
side: under ADBench's protocol (the primary verdict, :data:`~.render.PRIMARY_PROTOCOL_REASON`) and without its resampling
leak (``Finding.alt``).  Claims over "all 47 ADBench datasets" are judged only on :data:`~.rules.MIN_DATASETS` datasets
or more; the image claims only on a complete sweep (:func:`~.image.missing_image_runs`).  The page's text
(:func:`~.render.totals_text`, :func:`~.render.headline_text`, :func:`~.render.summary_text`) is written from the report's table; its
figure is :func:`usfkit.plots.report.claims_figure`, drawn with :data:`~.render.FIGURE`.
"""
from . import core, rules, render  # noqa: F401  (the registry, the rules, the words: no claim)
from . import theory, synthetic, tabular, vae, failures, image  # noqa: F401  (the topics register their claims)
from . import evaluation  # noqa: F401
from .core import *  # noqa: F401,F403
from .rules import *  # noqa: F401,F403
from .render import *  # noqa: F401,F403
from .theory import *  # noqa: F401,F403
from .synthetic import *  # noqa: F401,F403
from .tabular import *  # noqa: F401,F403
from .vae import *  # noqa: F401,F403
from .failures import *  # noqa: F401,F403
from .image import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403

# the report's order: by topic as the page shows them, each topic's claims as its module registers them
core.CLAIMS.sort(key=lambda c: list(render.TOPICS).index(c.topic))

__all__ = [*core.__all__, *rules.__all__, *render.__all__, *theory.__all__, *synthetic.__all__,
           *tabular.__all__, *vae.__all__, *failures.__all__, *image.__all__, *evaluation.__all__]
