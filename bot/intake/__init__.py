"""Ticket intake: one adapter per source format, each producing a typed Ticket or HistoricalIncident."""
