"""The monitoring hub: REST for scripts and old agents, WebSockets for agents and dashboards."""

__version__ = "0.1.0"
