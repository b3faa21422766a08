"""Vision detection: ONNX detector backends, model manifests, and the service that runs them on
camera frames from `vigil.frames.v1` and emits violations."""
