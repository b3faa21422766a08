"""The early-warning model: trained on simulated devices, exported to ONNX, measured, with its card.

Modules: `episodes` (the simulated devices: what is run, and the seeded split), `simulation`
(an episode's messages through the runtime's feature path and the real rule engine: rows and
labels), `fit` (the gradient-boosted trees and the rows they are fitted on), `export` (ONNX and
the manifest the runtime reads), `evaluate` (the warning policy replayed on held-out risks: the
operating point and the figures), `card` (the model card), `train` (the command,
`python -m models.early_warning.train`). Fitting and export need the `train` extra (scikit-learn,
skl2onnx); everything else, and the runtime (`detectors/early_warning/`), needs only onnxruntime
and numpy.
"""
