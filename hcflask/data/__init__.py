"""Input data of test jobs (issue 22): where the files are and how a job reads them.

:mod:`catalogue` asks Rucio for a dataset's replicas at a queue's RSE;
:mod:`plan` caches that answer per test and queue and hands each new job
its next files round robin; :mod:`stagein` is the part of the job wrapper
that copies and verifies them.  docs/data.md is the admin's view.
"""
