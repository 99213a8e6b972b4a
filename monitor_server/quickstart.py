"""``make run``: the hub on ./data/monitor.db with its URL and token printed, ready to try."""

from __future__ import annotations

import uvicorn

from monitor_server.app import create_app
from monitor_server.cli import announce, load_settings
from monitor_server.hub import Hub
from monitor_server.logs import configure
from monitor_server.server import uvicorn_config


def banner(hub: Hub) -> str:
    s = hub.settings
    base = f"http://{s.host}:{s.port}"
    return (
        "\n"
        f"  Hub:        {base}   (health: {base}/health)\n"
        f"  Dashboard:  {base}/ui\n"
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
    print(banner(hub), flush=True)
    uvicorn.Server(uvicorn_config(app, settings)).run()


if __name__ == "__main__":
    main()
