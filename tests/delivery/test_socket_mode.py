"""`incibot serve --socket-mode` end to end, offline: the bot's slack_sdk Socket Mode client asks the Slack
emulator for a connection (apps.connections.open, app-level token) and connects to the ws:// URL it answers, a
local stand-in for Slack's end (testkit SocketModeEmulator), which delivers envelopes and times the acks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.config import PROJECT_ROOT
from bot.net import free_port
from testkit.emulators import SlackEmulator, SocketModeEmulator


def test_serve_in_socket_mode_acknowledges_within_three_seconds_and_posts(tmp_path: Path) -> None:
    emu = SlackEmulator(tokens={"xoxb-socket"}, app_tokens={"xapp-socket"})
    slack_end = SocketModeEmulator(emu)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
    env.update({"PYTHONPATH": str(PROJECT_ROOT), "INCIBOT_DATA_DIR": str(tmp_path),
                "INCIBOT_SEED_DEMO_HISTORY": "false", "INCIBOT_LLM_BACKEND": "none",
                "INCIBOT_SLACK_BOT_TOKEN": "xoxb-socket", "INCIBOT_SLACK_APP_TOKEN": "xapp-socket",
                "INCIBOT_SLACK_API_URL": emu.url, "INCIBOT_PORT": str(free_port())})  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--socket-mode"], env=env, stderr=err,
                                cwd=PROJECT_ROOT)  # fmt: skip
    try:
        slack_end.wait_connected(timeout=180)
        assert emu.of("apps.connections.open")  # with the app-level token: the bot token would be refused

        ack = slack_end.send("slash_commands", {
            "command": "/triage", "text": "Claude API returns overloaded errors", "channel_id": "C-incidents",
            "user_id": "UALICE", "trigger_id": "trig-socket", "team_id": "T1", "api_app_id": "A1",
            "response_url": emu.url.replace("/api/", "/respond/socket")})  # fmt: skip
        assert "Triaging" in ack["text"]
        key = "slash:trig-socket"
        emu.wait_for(lambda: key in json.dumps(emu.messages.get("C-incidents")), timeout=60)
        ts = next(m["ts"] for m in emu.messages["C-incidents"] if key in json.dumps(m.get("metadata")))

        click = {"type": "block_actions", "user": {"id": "UBOB"}, "team": {"id": "T1"}, "api_app_id": "A1",
                 "trigger_id": "trig-click", "channel": {"id": "C-incidents"},
                 "container": {"type": "message", "message_ts": ts, "channel_id": "C-incidents"},
                 "message": {"ts": ts},
                 "actions": [{"action_id": "confirm", "block_id": "feedback", "value": key, "type": "button"}]}  # fmt: skip
        slack_end.send("interactive", click)
        emu.wait_for(lambda: any("Confirmed by <@UBOB>" in json.dumps(u["blocks"]) for u in emu.of("chat.update")),
                     timeout=30)  # fmt: skip

        event = {"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvSocket1",
                 "event_time": int(time.time()),
                 "event": {"type": "app_home_opened", "user": "UALICE", "channel": "D1", "tab": "home"}}  # fmt: skip
        slack_end.send("events_api", event)
        slack_end.send("events_api", event, retry_attempt=1, retry_reason="timeout")  # Slack's redelivery
        emu.wait_for(lambda: emu.of("views.publish"), timeout=30)
        time.sleep(0.5)
        assert len(emu.of("views.publish")) == 1
        assert emu.refused() == [], emu.refused()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        slack_end.close()
        emu.close()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
