"""Developer tools: the embedded Postgres server and the demo."""
