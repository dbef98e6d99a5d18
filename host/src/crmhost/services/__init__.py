"""Business logic shared by the HTTP API, the jobs and the CLI. Each function takes the Host."""
