"""`pvdm demo`: the stages (run), the time budget (plan), the options and resumable state the
stages share (state), the judgement of the samples (score), summary.json and the contact sheet
(report).
"""
