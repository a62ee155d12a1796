"""The native stack's processes: rendering their configuration (render), starting and stopping them
(processes, torchserve, nginx, monitoring, stack), and keeping them alive and bounded (supervisor,
logrotate, broker_retention). Imports store, drift's topic helpers, settings and errors; never release or above."""
