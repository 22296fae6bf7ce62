"""The history store gone under the bot: the ticket is kept and posted with a warning."""

from __future__ import annotations

import json
from pathlib import Path

from testkit.emulators import SlackEmulator
from tests.helpers import accept, make_service, top_level_posts, wait_until


def test_history_store_unavailable_the_ticket_is_kept_and_posted_with_a_warning(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    service.history.client.delete_collection(service.history.name)  # the store goes away under the bot
    service.start()
    accept(service, {"id": "h1", "title": "Elevated error rates", "service": "openai"})
    wait_until(lambda: top_level_posts(slack), what="post")
    service.stop()
    assert "History store unavailable" in json.dumps(top_level_posts(slack)[0]["blocks"])
    assert service.store.get("generic:h1").status == "drafted"
