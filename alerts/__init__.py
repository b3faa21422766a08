"""Alerts: violations become alerts in PostgreSQL; notices and alert changes leave through an outbox."""
