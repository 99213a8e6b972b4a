"""``make run``: the hub on ./data/monitor.db with its URL and token printed, ready to try."""

from __future__ import annotations

import uvicorn

from monitor_server.app import create_app
from monitor_server.cli import announce, load_settings
from monitor_server.hub import Hub
from monitor_server.logs import configure
from monitor_server.server import uvicorn_config
from monitor_server.ui.dashboard import Dashboard


def banner(hub: Hub, dashboard: Dashboard) -> str:
    s = hub.settings
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host  # noqa: S104 - mapping, not binding
    base = f"{'https' if s.tls_cert else 'http'}://{host}:{s.port}"
    minutes = round(s.login_code_ttl / 60)
    return (
        "\n"
        f"  Hub:        {base}   (health: {base}/health)\n"
        f"  Dashboard:  {base}/ui\n"
        f"  Log in:     {dashboard.login_link(base)}\n"
        f"              (one-time link, valid {minutes} min; or log in with the token)\n"
        f"  Token:      {hub.token.value}\n"
        f"              (kept in {s.token_dir / 'token'}; send it as X-Auth-Token)\n"
        f"  Try:        curl -H 'X-Auth-Token: {hub.token.value}' {base}/devices\n"
    )


def main() -> None:
    settings = load_settings([])
    configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    hub: Hub = app.state.hub
    announce(hub)
    print(banner(hub, app.state.dashboard), flush=True)
    uvicorn.Server(uvicorn_config(app, settings)).run()


if __name__ == "__main__":
    main()
