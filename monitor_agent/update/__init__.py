"""Over-the-air updates, the agent's side (DESIGN §12, docs/agent.md "Over-the-air updates").

``bundle``   ``monitor-agent bundle``: this platform's release (the agent and its dependency wheels)
``state``    the layout under the state folder, the update journal and the result file
``install``  verify, stage, install beside the running version, switch ``current``, roll back
``launcher`` ``monitor-agent launch``: runs ``current``, applies staged updates, watches the new
             version until it reaches ``welcome`` and restores the previous one if it does not
``commands`` the subcommands' argument parsers (loaded with the CLI, so kept light)
``receive``  the running agent's part of an update the hub offers: download, stage, report

``monitor-agent run`` imports only ``state`` and ``receive`` (standard library only; the rest loads
when an update arrives), and the swap never happens inside the running agent's socket handler.
"""
