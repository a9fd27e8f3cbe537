"""The hub's own providers: rag, files, mail, automation, agents (each in its own folder)."""
