"""The demo (``make demo``), and the harness the benchmark and end-to-end tests share with it."""

__all__: list[str] = []
