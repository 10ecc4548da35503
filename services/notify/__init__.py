"""WeChat subscribe messages: customers' subscriptions, templates, the outbox and the
rate-limited sender.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.notify.languages import localize, reported_language, reward_text_in, titles_of
from services.notify.sender import NotifySender, SenderPolicy, SendReport, send_forever
from services.notify.subscriptions import Allowance
from services.notify.templates import (
    NotifyTemplates,
    TemplateConfigError,
    default_templates_json,
    parse_templates,
    render,
)

__all__ = [
    "Allowance",
    "NotifySender",
    "NotifyTemplates",
    "SendReport",
    "SenderPolicy",
    "TemplateConfigError",
    "default_templates_json",
    "localize",
    "parse_templates",
    "render",
    "reported_language",
    "reward_text_in",
    "send_forever",
    "titles_of",
]
