"""The aiohttp server: settings, app factory, middlewares, resource lifecycles, entry point."""

__version__ = "0.1.0"
