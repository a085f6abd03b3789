"""No one-time ticket reaches a log through a logged path."""

import logging

from core.logging import RedactQueryStrings


def _record(msg, *args):
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


def test_paths_lose_their_query_strings():
    record = _record('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/ws/terminal/?ticket=s3cr3t")
    assert RedactQueryStrings().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws/terminal/?…" [accepted]'
    assert "s3cr3t" not in record.getMessage()


def test_a_message_without_arguments_is_redacted_too():
    record = _record("GET /__enclave__/auth?ticket=abc failed")
    RedactQueryStrings().filter(record)
    assert record.getMessage() == "GET /__enclave__/auth?… failed"


def test_the_portal_logging_config_filters_uvicorn():
    logger = logging.getLogger("uvicorn.error")
    assert any(isinstance(f, RedactQueryStrings) for f in logger.filters)
