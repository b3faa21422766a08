"""Simulated devices and sites, for the demo and for tests that replay device streams."""
