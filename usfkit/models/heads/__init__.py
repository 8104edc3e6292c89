"""The flow heads of §5.2 (FastFlow, CFlow, U-Flow as anomalib v2.0.0 builds them), each a folder in anomalib's
pattern (``torch_model``, ``lightning_model``, ``loss``, ``anomaly_map``), built from :mod:`usfkit.models.flows`
with the coupling as one argument (:mod:`.couplings`), on one base (:class:`.base.FlowHead`: the constant-determinant
flag, the App. B.2 prior, the MAP loss and the image score) and one Lightning module (:mod:`.lightning_base`)."""

__all__: list[str] = []  # the heads live in the subpackages fastflow, cflow and uflow
