"""Offline analysis of stored sessions: export (MRS-BIDS), replay, refit, report, study, simulate-study.

Everything here reads session folders through `protocols.session_folder.SessionReader` and runs the
same block pipeline as the agent (`mrs.pipeline`). It may import `agent` (simulate-study writes its
sessions through the agent's SessionWriter); `agent` never imports it (docs/architecture.md).
"""
