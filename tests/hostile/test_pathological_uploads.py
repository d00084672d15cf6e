"""Pathological text, markdown and HTML through the real API: each upload ends final
(ready, or failed with a reason) within a bound, however its lines are built."""
import time

import pytest

from tests.helpers import upload_final

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("text", [
    "# a" + " " * 300_000 + "#b",
    "#" * 300_000 + " title",
    ("word" * 100_000),
    "." * 500_000,
    "\n".join("# " + "#" * i for i in range(2000)),
])
def test_pathological_markdown_ends_final_quickly(client, collection, text):
    started = time.monotonic()
    done = upload_final(client, collection, json={"text": text, "format": "markdown"})
    assert time.monotonic() - started < 60
    assert done["status"] == "ready" or done["error"]


def test_deeply_nested_html_ends_final_with_a_reason(client, collection):
    html = "<div>" * 50_000 + "deep text" + "</div>" * 50_000
    done = upload_final(client, collection, json={"text": html, "format": "html"})
    assert done["status"] == "ready" or done["error"]
