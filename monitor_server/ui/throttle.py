"""The login form's throttle is the hub's, shared with every way in: ``monitor_server.throttle``.

``LoginThrottle`` stays importable under its old name.
"""

from __future__ import annotations

from monitor_server.throttle import Throttle as LoginThrottle

__all__ = ["LoginThrottle"]
