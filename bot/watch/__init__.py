"""Watch: the bot watching itself: verdict tallies (`quality.py`), the quality monitor, Prometheus metrics, the
LLM mode switch and reports.
May import: triage, store and the shared modules.
"""
