"""Jobs: creating, submitting, watching and judging them; stress ramps; fencing; batched job writes."""
