"""The kitchen detector: a compact YOLOv8-style network trained from scratch on the shared photos.

Modules: `net` (the network and its ONNX-facing output), `data` (dataset, split, augmentation),
`loss` (task-aligned assignment, CIoU + DFL + BCE), `train` (the resumable training command),
`evaluate` (mAP through the service's own decoder), `quantize` (static int8, QDQ u8/s8),
`card` (the model card). torch is only needed for training (`pip install -e ".[train]"`);
evaluation and quantization run on onnxruntime alone.
"""
