"""The ONNX models, their TOML manifests and the scripts that build, train or export them.

A package (not just a folder) so the `.onnx` and `.toml` files ship as package data and
`detectors.vision.manifest.default_models_dir()` finds them wherever Vigil is installed.
"""
