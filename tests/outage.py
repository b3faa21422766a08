"""A real network outage for a test: TCP proxies that can be cut (now in `shell.faults.proxy`, which
the fault suite shares; re-exported here for the tests that import them from this module)."""

from shell.faults.proxy import DatabaseProxy, TcpProxy

__all__ = ["DatabaseProxy", "TcpProxy"]
