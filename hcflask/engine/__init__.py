"""The engine: the ticks the scheduler runs, and what users ask for, grouped by concern.

* :mod:`~hcflask.engine.jobs` -- submission (keep N jobs in flight), monitor
  (batched status calls, judging), reconcile (after a crash: adopt or mark
  lost, never resubmit), stress ramps, fencing, batched job writes
* :mod:`~hcflask.engine.robot` -- the robot: snapshot, rules, decide (pure), the
  writing pass, replay, performance bands, alerts
* :mod:`~hcflask.engine.service` -- running it all: the scheduler, the instance
  lock, hosts and the core role's lease, the database clock, the disk guard, doctor
* :mod:`~hcflask.engine.data` -- the rollups and retention
* here: :mod:`status` (the one owner of queue status), :mod:`actions` (user
  requests from the UI, API and CLI), :mod:`notify` + :mod:`runaction` (the
  actions outbox), :mod:`queue_names`, :mod:`tokens`, :mod:`common`
"""
