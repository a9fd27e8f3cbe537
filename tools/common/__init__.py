"""Libraries the providers share; not a provider (no entry point, no tools, no state).

Owns: reading documents into text blocks (`documents`: PDF, Office, HTML, mail, plain text; used by the
knowledge base, files' text extraction and mail's HTML bodies) and watching folders that survives any
file name and restarts itself (`watch`: files' resources and the knowledge base's folder sync).

Must not: import a provider package (`tools.files`, `tools.rag`, ...): providers import this, never
each other.
"""
