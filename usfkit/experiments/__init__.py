"""The chapters' experiments, apart from the models they run (which live in :mod:`usfkit`):

* :mod:`.lossparts` — the two terms of a flow's NLL, Eq. 5 (chapter 02);
* :mod:`.collapse` — Deep SVDD collapse and (Non)USF determinants along training (chapter 03);
* :mod:`.alignment` — latent norm vs true likelihood on the App. C mixture (chapter 04);
* :mod:`.tabular` — the ADBench benchmark of §5.1 (chapter 05; ``usf-tabular``);
* :mod:`.vae` — VAE-USFlow vs VAE-NonUSFlow sweeps (chapter 06);
* :mod:`.images` — the MVTec AD / VisA benchmark of §5.2 (chapter 07;
  ``python -m usfkit.experiments.images``);
* :mod:`.claims` — the reproduction report: the paper's claims judged on the saved results
  (chapter 08).
"""

__all__: list[str] = []  # the experiments are imported by module: ``from usfkit.experiments import tabular``
