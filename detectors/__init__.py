"""Detectors: consume device readings and camera frames from Kafka, emit catalogue violations."""
