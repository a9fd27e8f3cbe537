"""The `junction` command line.

Owns: argument parsing and the subcommands (`main`: serve, stdio, init, tools, call, ...;
`auth`: users, tokens, secrets, OAuth clients, audit; `connectors`), and the helpers they share
(`common`: config loading, a client to a running hub, one-line errors; `local`: a provider run in
this process for one command).

Must not: hold hub logic of its own; a command loads the config, builds or reaches a hub, and
prints what it answers.
"""

from hub.cli.main import main

__all__ = ["main"]
