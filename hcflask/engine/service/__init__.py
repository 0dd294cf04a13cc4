"""Running the engine: scheduler, instance lock, hosts, the core role and its lease, clock, disk guard, doctor."""
