"""One module per command. Each exposes ``register(app)`` and imports only
Typer and the standard library at module level (start-up time matters)."""
