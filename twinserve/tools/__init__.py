"""Developer tools: benchmarks (bench), the wrk driver (wrk), the swap check under load (swapcheck).
They use the product; the product never imports them (import-linter contract in pyproject.toml)."""
