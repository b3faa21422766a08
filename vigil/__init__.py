"""Vigil's shared core: event types, topic names, settings, Kafka and database plumbing, the CLI."""

__version__ = "0.1.0"
