"""CLI subcommands beyond the core ones in monitor.cli: one module per command."""
