"""The engine: the ticks the scheduler runs, and what users ask for.

* :mod:`core` -- start/end tests, renew templates, run the robot hooks
* :mod:`submission` -- keep N jobs in flight per queue
* :mod:`monitor` -- batched status calls, judging finished jobs
* :mod:`reconcile` -- after a crash: adopt or mark lost, never resubmit
* :mod:`actions` -- user requests from the UI, API and CLI
"""
