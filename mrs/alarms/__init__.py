"""The alarm rules, one per module, each defining `RULE = mrs.qc.AlarmRule(...)`; `mrs.qc.RULES` collects
them (docs/architecture.md: how to add an alarm)."""
