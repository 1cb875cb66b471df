"""cde-bot: Slack chat-ops for Productsup's CDE (Connector Development Environment)."""

__version__ = "0.1.0"
