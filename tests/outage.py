"""A real network outage for a test: TCP proxies that can be cut (now in `vigil.faults.proxy`, which
the fault suite shares; re-exported here for the tests that import them from this module)."""

from vigil.faults.proxy import DatabaseProxy, TcpProxy

__all__ = ["DatabaseProxy", "TcpProxy"]
