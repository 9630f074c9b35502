"""A logging filter that removes anything shaped like a credential from every log line.

Services never log secrets on purpose; this catches what libraries might (an upstream error echoing
a key, a URL with credentials) before it reaches a log file.
"""

from __future__ import annotations

import logging


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from providers_app.secrets import redact

        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
