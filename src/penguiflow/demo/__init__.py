"""``penguiflow demo``: an offline workload against local backends, shown live in the terminal."""
