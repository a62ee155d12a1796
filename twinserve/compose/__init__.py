"""The same stack in Docker: the compose stack's rendered configs (configs), its images built from a
Debian base (images), and the entry points its containers run (services). Reuses runtime, observe and drift."""
