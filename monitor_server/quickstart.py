"""``make run``: the hub on ./data/monitor.db with its URL and token printed, ready to try."""

from __future__ import annotations

from pathlib import Path

from monitor_agent.sidecar import start_sidecar, stop_sidecar
from monitor_server.app import create_app
from monitor_server.cli import announce, load_settings
from monitor_server.hub import Hub
from monitor_server.logs import configure
from monitor_server.server import serve
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
    # One local agent next to the hub, so the dashboard shows a device at once. It retries
    # with backoff until uvicorn listens, and gets SIGTERM (close 1000) when the hub stops.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    scheme = "https" if settings.tls_cert else "http"
    agent = start_sidecar(
        f"{scheme}://{host}:{settings.port}", hub.token.value, Path("data/agent"), ca_file=settings.tls_cert
    )
    try:
        serve(app, settings)
    finally:
        stop_sidecar(agent)


if __name__ == "__main__":
    main()
