"""Camera ingest: frames from registered cameras (pulled over RTSP, HTTP MJPEG or from a file, or
pushed by edge boxes) to Kafka `vigil.frames.v1`.

Each sampled frame is reduced once to a small grey thumbnail and a sharpness figure
(`gate.frame_features`); `gate.MotionGate` then decides whether the frame is worth sending to the
vision detectors, and `tamper.TamperDetector` watches the same thumbnail for a camera that has been
blacked out, covered, defocused, turned away or frozen. Both are pure per-camera logic with no I/O,
cheap enough for thousands of cameras per bureau: a static camera costs its decode and a compare.

Besides, `ring.FrameRing` keeps each camera's recent frames for event clips (`clips`), and `live`
publishes a camera's frames while someone watches it live.
"""
