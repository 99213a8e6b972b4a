"""Identity and access (DESIGN §10): principals, secrets, passwords, authentication, audit.

``Identity`` bundles the services one hub owns; routes reach it as ``hub.identity``:

- ``authn``: ``Authenticator`` (credential -> ``Principal``, with its revocable cache);
- ``accounts``: ``Accounts`` (users, login sessions, API keys);
- ``enrollment``: ``Enrollment`` (enrollment tokens, device credentials, revoke/reset/rotate);
- ``audit``: ``Audit`` (the audit log);
- ``listeners``: ``IdentityListeners`` (``SessionsEnded`` / ``DeviceRevoked`` for socket owners).

Authorization of routes is in ``monitor_server.identity.authz`` (not imported here: it needs
the HTTP layer, which needs the hub, which needs this).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor_server.identity.accounts import Accounts, NameThrottle
from monitor_server.identity.audit import Audit
from monitor_server.identity.authn import Authenticator
from monitor_server.identity.enrollment import Enrollment
from monitor_server.identity.events import IdentityListeners
from monitor_server.settings import Settings
from monitor_server.store import Store
from monitor_server.throttle import Throttle


@dataclass
class Identity:
    authn: Authenticator
    accounts: Accounts
    enrollment: Enrollment
    audit: Audit
    listeners: IdentityListeners

    @classmethod
    def build(cls, store: Store, settings: Settings, legacy_token: str | None) -> Identity:
        """``legacy_token``: the fleet token to accept as admin, or None (``MONITOR_LEGACY_TOKEN=off``)."""
        s = settings
        authn = Authenticator(store, legacy_token, s.ui_origins, s.auth_cache_ttl)
        audit, listeners = Audit(store), IdentityListeners()
        names = NameThrottle(Throttle(s.login_name_max_failures, s.auth_failure_window, s.login_name_lockout))
        return cls(
            authn=authn,
            accounts=Accounts(store, authn, audit, listeners, s.session_lifetime, names),
            enrollment=Enrollment(store, authn, audit, listeners),
            audit=audit,
            listeners=listeners,
        )
