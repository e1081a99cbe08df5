"""Load: floods, slow and greedy clients, many streams and long work, which must not take the services from
everyone else."""
